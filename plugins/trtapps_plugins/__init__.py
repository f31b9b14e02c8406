"""The built-in apps of trtapps. Each subpackage is an independent plugin registered through the ``trtapps``
entry-point group, exactly as a third-party plugin package is; they never import each other."""
