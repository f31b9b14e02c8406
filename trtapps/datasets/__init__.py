"""Facts about public datasets that the apps and the evaluation both rely on (class lists, id numberings)."""
