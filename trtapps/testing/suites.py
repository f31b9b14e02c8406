"""Conformance suites: test classes a plugin subclasses to prove its components honour the trtapps contract.

Each suite is a plain class whose name does not start with ``Test``, so pytest collects it only through your
subclass::

    from trtapps.testing.suites import AppSuite

    class TestMyAppConformance(AppSuite):
        app_options = {"type": "my_app", "model": "models/my.onnx", "conf_threshold": 0.3}
        images = ["tests/data/street.jpg"]   # optional real photos, added to synthetic frames
        expect_detections = True             # the photos must give at least one detection

The suites build everything through a fresh :class:`~trtapps.plugins.PluginManager`, so they also check that
the component is discoverable the way ``trtapps run`` finds it. They are generic and fast: one model load per
class, a handful of frames.

Values only known at test time (a model written to a temporary folder, photos found through an environment
variable) go in by overriding a class-scoped fixture: ``suite_options`` (the app options), ``suite_images``,
``suite_sink_options``, ``suite_postprocessor_options``. Class-scoped fixtures are class methods (pytest 9
deprecates instance methods there)::

    class TestMyAppConformance(AppSuite):
        app_options = {"type": "my_app", "model": "set below"}

        @pytest.fixture(scope="class")
        @classmethod
        def suite_options(cls, my_model_path):        # my_model_path: a session fixture of yours
            return {**cls.app_options, "model": str(my_model_path)}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import ValidationError

from trtapps.context import RunContext
from trtapps.metrics import RunSummary
from trtapps.plugins import PluginManager
from trtapps.registry import AppOptions, ComponentSpec, Options, PostprocessorOptions, SinkOptions
from trtapps.runners.base import Runner, select_backend
from trtapps.stages import App, Postprocessor, Residency, Sink
from trtapps.structures import Detections, Frame, FrameResult, is_device_array, to_host
from trtapps.testing import load_frame, synthetic_frames
from trtapps.zoo import resolve_model

__all__ = ["AppSuite", "BoundApp", "PostprocessorSuite", "SinkSuite"]

#: a key no options model should accept
_UNKNOWN_KEY = "no_such_option_for_conformance"


def _registered(manager: PluginManager, kind: str, name: str) -> ComponentSpec[Any]:
    """The spec of *name*, or a test failure naming the installed choices and any plugin that failed to load."""
    registry = manager.registries.of(kind)
    if name not in registry:
        failures = "; ".join(manager.failure_lines()) or "none"
        pytest.fail(f"{registry.unknown_message(name)} (plugin load failures: {failures})")
    return registry.get(name)


def _check_registration(manager: PluginManager, spec: ComponentSpec[Any]) -> None:
    assert spec.plugin in manager.infos, f"{spec.name!r} was registered by {spec.plugin!r}, which is not loaded"
    failures = [f for f in manager.failures if f.name == spec.plugin]
    assert not failures, f"plugin {spec.plugin!r} registered {spec.name!r} but also failed: {failures}"
    assert spec.summary.strip(), f"{spec.name!r} has no summary (the line `trtapps plugins` shows)"
    assert "\n" not in spec.summary.strip(), f"the summary of {spec.name!r} must be one line"


def _check_options_model(spec: ComponentSpec[Any], base: type[Options], options: Mapping[str, Any]) -> None:
    model = spec.options
    assert issubclass(model, base), f"{model.__name__} must subclass trtapps.{base.__name__}"
    assert model.model_config.get("extra") == "forbid", (
        f"{model.__name__} must forbid unknown keys (inherit model_config from trtapps.{base.__name__})"
    )
    with pytest.raises(ValidationError) as info:
        model.model_validate({**options, _UNKNOWN_KEY: 1})
    assert [e["type"] for e in info.value.errors()] == ["extra_forbidden"], info.value.errors()
    validated = model.model_validate(dict(options))
    assert validated.type == spec.name, f"options type {validated.type!r} differs from the registered {spec.name!r}"
    # PipelineConfig.to_dict ships options as JSON data; they must come back equal
    assert model.model_validate(validated.model_dump(mode="json")) == validated


class _ComponentSuite:
    """What every suite starts from: a fresh plugin manager, the options its subclass declares, and the component
    registered under their ``type``."""

    #: the registry the component is looked up in (``app``, ``sink``, ``postprocessor``)
    _kind: ClassVar[str] = ""

    @pytest.fixture(scope="class")
    @classmethod
    def suite_manager(cls) -> PluginManager:
        return PluginManager()

    @classmethod
    def _declared(cls, options: Mapping[str, Any], setting: str) -> dict[str, Any]:
        """A copy of the class's declared *options*, or a test failure saying what to set (*setting*)."""
        if not options:
            pytest.fail(f"{cls.__name__} must set {setting}")
        return dict(options)

    @classmethod
    def _registered_spec(cls, manager: PluginManager, options: Mapping[str, Any]) -> ComponentSpec[Any]:
        """The spec registered under the options' ``type`` (see :func:`_registered`)."""
        return _registered(manager, cls._kind, str(options.get("type", "")))


def _same(a: Detections, b: Detections, box_atol: float, score_atol: float) -> str | None:
    """Why two detections of one frame differ (compared in score order), or ``None`` when they agree."""
    a, b = a.to_host(), b.to_host()
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} detections"
    if not len(a):
        return None
    oa = np.lexsort((a.boxes[:, 1], a.boxes[:, 0], a.class_ids, -np.round(a.scores, 4)))
    ob = np.lexsort((b.boxes[:, 1], b.boxes[:, 0], b.class_ids, -np.round(b.scores, 4)))
    if not np.array_equal(a.class_ids[oa], b.class_ids[ob]):
        return f"class ids {a.class_ids[oa].tolist()} vs {b.class_ids[ob].tolist()}"
    if not np.allclose(a.scores[oa], b.scores[ob], atol=score_atol, rtol=0):
        return f"scores differ by up to {np.abs(a.scores[oa] - b.scores[ob]).max():.3g}"
    if not np.allclose(a.boxes[oa], b.boxes[ob], atol=box_atol, rtol=0):
        return f"boxes differ by up to {np.abs(a.boxes[oa] - b.boxes[ob]).max():.3g} px"
    if a.landmarks is None or b.landmarks is None:
        return None if a.landmarks is b.landmarks else "only one has landmarks"
    if not np.allclose(a.landmarks[oa], b.landmarks[ob], atol=box_atol, rtol=0):
        return "landmarks differ"
    return None


# ==============================================================================================================
# apps
# ==============================================================================================================


@dataclass
class BoundApp:
    """An app built by its registered factory and bound to a real runner (what the pipeline does)."""

    app: App
    runner: Runner
    options: AppOptions
    context: RunContext


class AppSuite(_ComponentSuite):
    """The contract of an app: registration, options, ``bind`` with a real runner, ``preprocess`` and ``decode``.

    Set in the subclass:

    * ``app_options`` (required): the ``app:`` mapping of a pipeline file, ``type`` and ``model`` included.
      Relative model paths are resolved against ``config_dir`` (default: the current directory), and model-zoo
      names work as in pipeline files.
    * ``images``: real photos (paths or BGR arrays) added to the synthetic frames; with them, set
      ``expect_detections = True`` so the batch-versus-single comparison cannot pass vacuously.
    * ``synthetic_sizes``: ``(height, width)`` of the synthetic frames (mixed sizes by default).
    * ``backend``: the backend to run on (``onnxruntime``, the CPU backend, by default).
    * ``max_batch``: the largest batch the suite builds (the model's own limit also applies).
    * ``box_atol`` / ``score_atol``: how close a batched result must be to the one-by-one result.
    * ``bounds_tolerance``: how far (pixels) a box may stick out of its frame.
    """

    app_options: ClassVar[Mapping[str, Any]] = {}
    images: ClassVar[Sequence[str | Path | np.ndarray]] = ()
    synthetic_sizes: ClassVar[Sequence[tuple[int, int]]] = ((480, 640), (375, 500), (427, 640))
    config_dir: ClassVar[str | Path | None] = None
    backend: ClassVar[str] = "onnxruntime"
    max_batch: ClassVar[int] = 4
    expect_detections: ClassVar[bool] = False
    box_atol: ClassVar[float] = 0.5
    score_atol: ClassVar[float] = 1e-3
    bounds_tolerance: ClassVar[float] = 0.5
    _kind = "app"

    # -- fixtures (class-scoped: one model load per suite) ------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def suite_options(cls) -> dict[str, Any]:
        """The app options under test; override this fixture to compute them at test time."""
        return cls._declared(cls.app_options, "app_options = {'type': ..., 'model': ...}")

    @pytest.fixture(scope="class")
    @classmethod
    def suite_images(cls) -> list[str | Path | np.ndarray]:
        """Real photos added to the synthetic frames; override to find them at test time."""
        return list(cls.images)

    @pytest.fixture(scope="class")
    @classmethod
    def app_spec(cls, suite_manager: PluginManager, suite_options: dict[str, Any]) -> ComponentSpec[Any]:
        return cls._registered_spec(suite_manager, suite_options)

    @pytest.fixture(scope="class")
    @classmethod
    def bound_app(
        cls, suite_manager: PluginManager, app_spec: ComponentSpec[Any], suite_options: dict[str, Any]
    ) -> Iterator[BoundApp]:
        """The app from its registered factory, bound to a runner of the registered backend."""
        config_dir = Path(cls.config_dir) if cls.config_dir is not None else Path.cwd()
        context = RunContext(config_dir=config_dir)
        options = app_spec.options.model_validate(suite_options)
        assert isinstance(options, AppOptions), f"{app_spec.options.__name__} must subclass trtapps.AppOptions"
        backend = select_backend(cls.backend, suite_manager.registries.backend)
        backend_options = backend.options.model_validate({"type": backend.name})
        runner: Runner = backend.factory(backend_options, context, resolve_model(options.model, config_dir))
        try:
            app = app_spec.factory(options, context)
            app.bind(runner)
            yield BoundApp(app=app, runner=runner, options=options, context=context)
        finally:
            runner.close()

    @pytest.fixture(scope="class")
    @classmethod
    def suite_frames(cls, suite_images: list[str | Path | np.ndarray]) -> list[Frame]:
        """The real photos, synthetic frames of mixed sizes, and one uniform grey frame (likely no detections)."""
        frames = [load_frame(image, index=i) for i, image in enumerate(suite_images)]
        synthetic = synthetic_frames(len(cls.synthetic_sizes), cls.synthetic_sizes, seed=len(frames))
        frames += synthetic
        height, width = cls.synthetic_sizes[0]
        frames.append(Frame(np.full((height, width, 3), 114, np.uint8), source="uniform-grey"))
        for i, frame in enumerate(frames):
            frame.index = i
        return frames

    @pytest.fixture(scope="class")
    @classmethod
    def batches(cls, bound_app: BoundApp, suite_frames: list[Frame]) -> list[list[Frame]]:
        """The frames grouped by ``batch_key`` (as the pipeline does), in batches of at most the batch limit."""
        limit = min(cls.max_batch, bound_app.runner.max_batch or cls.max_batch)
        groups: dict[Any, list[Frame]] = {}
        for frame in suite_frames:
            groups.setdefault(bound_app.app.batch_key(frame), []).append(frame)
        return [group[i : i + limit] for group in groups.values() for i in range(0, len(group), limit)]

    @pytest.fixture(scope="class")
    @classmethod
    def batched_detections(cls, bound_app: BoundApp, batches: list[list[Frame]]) -> dict[int, Detections]:
        """Detections per frame index, from preprocess → runner → decode over whole batches."""
        return {f.index: d for batch in batches for f, d in zip(batch, cls._detect(bound_app, batch))}

    @pytest.fixture(scope="class")
    @classmethod
    def single_detections(cls, bound_app: BoundApp, suite_frames: list[Frame]) -> dict[int, Detections]:
        """Detections per frame index, one frame per batch."""
        return {f.index: cls._detect(bound_app, [f])[0] for f in suite_frames}

    @staticmethod
    def _detect(bound: BoundApp, frames: Sequence[Frame]) -> list[Detections]:
        """preprocess → runner → decode, moving arrays between host and device as the pipeline does."""
        inputs, metas = bound.app.preprocess(frames)
        device = bound.runner.residency is Residency.DEVICE
        if device:
            import cupy

            inputs = {k: v if is_device_array(v) else cupy.asarray(v) for k, v in inputs.items()}
        outputs = bound.runner.infer(inputs)
        if device and not getattr(bound.app, "decodes_on_device", False):
            outputs = {k: to_host(v) for k, v in outputs.items()}
        detections = bound.app.decode(outputs, frames, metas)
        assert isinstance(detections, list), f"decode must return a list, got {type(detections).__name__}"
        assert len(detections) == len(frames), f"decode returned {len(detections)} results for {len(frames)} frames"
        return detections

    def _check_inputs(self, bound: BoundApp, inputs: Mapping[str, Any], metas: Sequence[Any], batch: int) -> None:
        runner = bound.runner
        assert set(inputs) == {t.name for t in runner.inputs}, (
            f"preprocess returned inputs {sorted(inputs)}, the model's are {[t.name for t in runner.inputs]}"
        )
        for info in runner.inputs:
            array = inputs[info.name]
            assert array.dtype == info.dtype, f"input {info.name!r}: {array.dtype}, the model wants {info.dtype}"
            assert array.ndim == len(info.shape), f"input {info.name!r}: shape {array.shape} vs {info.describe()}"
            assert array.shape[0] == batch, f"input {info.name!r} not batch-first: {array.shape}, batch {batch}"
            for axis, want in enumerate(info.shape[1:], start=1):
                assert want in (None, array.shape[axis]), f"input {info.name!r}: {array.shape} vs {info.describe()}"
        assert len(metas) == batch, f"preprocess returned {len(metas)} metas for {batch} frames"

    # -- registration and options ---------------------------------------------------------------------------------
    def test_registered_through_the_plugin_manager(
        self, suite_manager: PluginManager, app_spec: ComponentSpec[Any]
    ) -> None:
        _check_registration(suite_manager, app_spec)

    def test_options_subclass_app_options_and_forbid_unknown_keys(
        self, app_spec: ComponentSpec[Any], suite_options: dict[str, Any]
    ) -> None:
        _check_options_model(app_spec, AppOptions, suite_options)

    # -- bind ------------------------------------------------------------------------------------------------------
    def test_bind_with_the_real_runner(self, bound_app: BoundApp, suite_frames: list[Frame]) -> None:
        app = bound_app.app
        for method in ("bind", "batch_key", "preprocess", "decode"):
            assert callable(getattr(app, method, None)), f"{type(app).__name__} lacks {method}()"
        assert app.keypoints is None or (isinstance(app.keypoints, int) and app.keypoints > 0), app.keypoints
        for frame in suite_frames:
            hash(app.batch_key(frame))  # the single-image service groups requests by it in a dict

    def test_labels_not_empty(self, bound_app: BoundApp) -> None:
        labels = list(bound_app.app.labels)
        assert labels, "labels must name the classes after bind (index = class id)"
        assert all(isinstance(label, str) and label for label in labels), labels

    # -- preprocess ------------------------------------------------------------------------------------------------
    def test_preprocess_one_frame_matches_the_model_inputs(
        self, bound_app: BoundApp, suite_frames: list[Frame]
    ) -> None:
        for frame in suite_frames:
            inputs, metas = bound_app.app.preprocess([frame])
            self._check_inputs(bound_app, inputs, metas, 1)

    def test_preprocess_batches_of_mixed_sizes(
        self, bound_app: BoundApp, suite_frames: list[Frame], batches: list[list[Frame]]
    ) -> None:
        assert len({(f.height, f.width) for f in suite_frames}) > 1, "the suite needs frames of several sizes"
        for batch in batches:
            inputs, metas = bound_app.app.preprocess(batch)
            self._check_inputs(bound_app, inputs, metas, len(batch))

    def test_preprocess_leaves_the_frames_untouched(self, bound_app: BoundApp, suite_frames: list[Frame]) -> None:
        copies = [np.array(to_host(f.image), copy=True) for f in suite_frames]
        for frame in suite_frames:
            bound_app.app.preprocess([frame])
        for frame, copy in zip(suite_frames, copies):
            assert np.array_equal(to_host(frame.image), copy), f"preprocess modified frame {frame.index} in place"

    # -- decode ----------------------------------------------------------------------------------------------------
    def test_decode_gives_one_detections_per_frame_in_original_pixels(
        self, bound_app: BoundApp, suite_frames: list[Frame], batched_detections: dict[int, Detections]
    ) -> None:
        labels = list(bound_app.app.labels)
        keypoints = bound_app.app.keypoints
        tol = self.bounds_tolerance
        for frame in suite_frames:
            dets = batched_detections[frame.index]
            assert isinstance(dets, Detections), f"decode must return Detections, got {type(dets).__name__}"
            dets = dets.to_host()
            where = f"frame {frame.index} ({frame.source}, {frame.width}x{frame.height})"
            boxes = dets.boxes
            assert np.isfinite(boxes).all(), f"{where}: non-finite boxes"
            assert np.isfinite(dets.scores).all(), f"{where}: non-finite scores"
            assert (boxes[:, 0] >= -tol).all(), f"{where}: box left edge < 0"
            assert (boxes[:, 1] >= -tol).all(), f"{where}: box top edge < 0"
            assert (boxes[:, 2] <= frame.width + tol).all(), f"{where}: box right edge beyond the frame width"
            assert (boxes[:, 3] <= frame.height + tol).all(), f"{where}: box bottom edge beyond the frame height"
            assert (boxes[:, 2] >= boxes[:, 0]).all(), f"{where}: a box has x2 < x1"
            assert (boxes[:, 3] >= boxes[:, 1]).all(), f"{where}: a box has y2 < y1"
            assert ((dets.class_ids >= 0) & (dets.class_ids < len(labels))).all(), (
                f"{where}: class ids {sorted(set(dets.class_ids.tolist()))} outside the {len(labels)} labels"
            )
            if keypoints is not None:
                assert dets.landmarks is not None, f"{where}: the app declares {keypoints} keypoints but gave none"
                assert dets.landmarks.shape[1:] == (keypoints, 2), f"{where}: landmarks {dets.landmarks.shape}"
                assert np.isfinite(dets.landmarks).all(), f"{where}: non-finite landmarks"

    def test_batch_of_n_equals_one_by_one(
        self,
        batches: list[list[Frame]],
        batched_detections: dict[int, Detections],
        single_detections: dict[int, Detections],
    ) -> None:
        if all(len(batch) == 1 for batch in batches):
            pytest.skip("every batch holds one frame (batch-1 model or distinct batch keys)")
        for index, batched in batched_detections.items():
            problem = _same(batched, single_detections[index], self.box_atol, self.score_atol)
            assert problem is None, f"frame {index}: batched and one-by-one results differ: {problem}"

    def test_detects_something_on_the_images(self, batched_detections: dict[int, Detections]) -> None:
        if not self.expect_detections:
            pytest.skip("set expect_detections = True (with images showing objects) to require detections")
        assert sum(len(d) for d in batched_detections.values()) > 0, "no detections on any image"


# ==============================================================================================================
# sinks
# ==============================================================================================================


class SinkSuite(_ComponentSuite):
    """The contract of a sink: registration, options, ``write`` and ``close`` (also after zero writes).

    Set in the subclass:

    * ``sink_options`` (required): the sink's mapping in ``sinks:``. Relative paths land under the test's
      temporary output folder.
    * ``writes_files``: the sink writes files under the output folder (default ``True``; a display sink would
      say ``False``).
    * ``idempotent_close``: a second ``close()`` must not fail (default ``True``).

    Override :meth:`check_output` to check what was written against the results the suite sent.
    """

    sink_options: ClassVar[Mapping[str, Any]] = {}
    writes_files: ClassVar[bool] = True
    idempotent_close: ClassVar[bool] = True
    labels: ClassVar[Sequence[str]] = ("person", "bicycle", "car")
    _kind = "sink"

    @pytest.fixture(scope="class")
    @classmethod
    def suite_sink_options(cls) -> dict[str, Any]:
        """The sink options under test; override this fixture to compute them at test time."""
        return cls._declared(cls.sink_options, "sink_options = {'type': ...}")

    @pytest.fixture(scope="class")
    @classmethod
    def sink_spec(cls, suite_manager: PluginManager, suite_sink_options: dict[str, Any]) -> ComponentSpec[Any]:
        return cls._registered_spec(suite_manager, suite_sink_options)

    @pytest.fixture
    def output_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "out"

    @pytest.fixture
    def sink(
        self, sink_spec: ComponentSpec[Any], suite_sink_options: dict[str, Any], output_dir: Path, tmp_path: Path
    ) -> Any:
        context = RunContext(output_dir=output_dir, config_dir=tmp_path, labels=list(self.labels))
        return sink_spec.factory(sink_spec.options.model_validate(suite_sink_options), context)

    def sample_results(self, with_images: bool) -> list[FrameResult]:
        """Results of two sources: frames with detections, one with none, one failed frame (deterministic)."""
        rng = np.random.default_rng(7)
        results = []
        for frame in synthetic_frames(4, ((120, 160), (90, 120))):
            n = 0 if frame.index == 1 else 3
            xy = rng.uniform(0, [frame.width / 2, frame.height / 2], (n, 2))
            wh = rng.uniform(4, [frame.width / 2, frame.height / 2], (n, 2))
            dets = Detections(np.hstack([xy, xy + wh]), rng.uniform(0.3, 1.0, n),
                              rng.integers(0, len(self.labels), n))
            results.append(FrameResult(
                source=frame.source, index=frame.index, width=frame.width, height=frame.height, detections=dets,
                image=frame.image if with_images else None, timestamp=frame.index / 25, labels=self.labels,
            ))
        results.append(FrameResult(source="second.mp4", index=0, width=0, height=0,
                                   error="frame 0 could not be decoded", source_id=1))
        return results

    def check_output(self, output_dir: Path, results: Sequence[FrameResult]) -> None:
        """What the sink wrote for *results*; the default only requires a non-empty file when ``writes_files``."""
        if self.writes_files:
            files = [p for p in output_dir.rglob("*") if p.is_file() and p.stat().st_size > 0]
            assert files, f"the sink wrote nothing under {output_dir}"

    def test_registered_through_the_plugin_manager(
        self, suite_manager: PluginManager, sink_spec: ComponentSpec[Any]
    ) -> None:
        _check_registration(suite_manager, sink_spec)

    def test_options_subclass_sink_options_and_forbid_unknown_keys(
        self, sink_spec: ComponentSpec[Any], suite_sink_options: dict[str, Any]
    ) -> None:
        _check_options_model(sink_spec, SinkOptions, suite_sink_options)

    def test_is_a_sink(self, sink: Any) -> None:
        assert isinstance(sink, Sink), f"{type(sink).__name__} lacks write(result), close(summary) or needs_images"
        assert isinstance(sink.needs_images, bool), "needs_images must be a bool"
        sink.close(RunSummary())

    def test_write_and_close_with_a_summary(self, sink: Any, output_dir: Path) -> None:
        results = self.sample_results(with_images=sink.needs_images)
        summary = RunSummary()
        for result in results:
            sink.write(result)
            summary.frames_in += 1
            summary.frames_out += 1
            summary.frames_failed += 0 if result.ok else 1
            summary.detections += len(result.detections) if result.detections is not None else 0
        summary.finished = summary.started + 1.0
        sink.close(summary)
        self.check_output(output_dir, results)

    def test_close_after_zero_writes(self, sink: Any) -> None:
        summary = RunSummary()
        summary.finished = summary.started
        sink.close(summary)

    def test_close_twice(self, sink: Any) -> None:
        if not self.idempotent_close:
            pytest.skip("idempotent_close = False")
        sink.close(RunSummary())
        sink.close(RunSummary())


# ==============================================================================================================
# postprocessors
# ==============================================================================================================


class PostprocessorSuite(_ComponentSuite):
    """The contract of a postprocessor: registration, options, empty in → empty out, a subset of its input.

    Set in the subclass:

    * ``postprocessor_options`` (required): its mapping in ``postprocess:``.
    * ``labels``: the app's class names the factory sees (``RunContext.labels``).
    * ``filters_only``: the output never has more detections than the input (default ``True``).
    """

    postprocessor_options: ClassVar[Mapping[str, Any]] = {}
    labels: ClassVar[Sequence[str]] = ("person", "bicycle", "car")
    filters_only: ClassVar[bool] = True
    _kind = "postprocessor"

    @pytest.fixture(scope="class")
    @classmethod
    def suite_postprocessor_options(cls) -> dict[str, Any]:
        """The postprocessor options under test; override this fixture to compute them at test time."""
        return cls._declared(cls.postprocessor_options, "postprocessor_options = {'type': ...}")

    @pytest.fixture(scope="class")
    @classmethod
    def postprocessor_spec(
        cls, suite_manager: PluginManager, suite_postprocessor_options: dict[str, Any]
    ) -> ComponentSpec[Any]:
        return cls._registered_spec(suite_manager, suite_postprocessor_options)

    @pytest.fixture
    def postprocessor(
        self, postprocessor_spec: ComponentSpec[Any], suite_postprocessor_options: dict[str, Any]
    ) -> Any:
        options = postprocessor_spec.options.model_validate(suite_postprocessor_options)
        return postprocessor_spec.factory(options, RunContext(labels=list(self.labels)))

    @pytest.fixture
    def frame(self) -> Frame:
        return synthetic_frames(1, ((240, 320),))[0]

    def random_detections(self, n: int, landmarks: bool) -> Detections:
        """*n* deterministic detections inside a 320×240 frame (5 landmarks each when asked)."""
        rng = np.random.default_rng(n)
        xy = rng.uniform(0, [200, 150], (n, 2))
        wh = rng.uniform(1, [120, 90], (n, 2))
        return Detections(
            boxes=np.hstack([xy, xy + wh]),
            scores=rng.uniform(0, 1, n),
            class_ids=rng.integers(0, len(self.labels), n),
            landmarks=rng.uniform(0, 240, (n, 5, 2)) if landmarks else None,
        )

    def test_registered_through_the_plugin_manager(
        self, suite_manager: PluginManager, postprocessor_spec: ComponentSpec[Any]
    ) -> None:
        _check_registration(suite_manager, postprocessor_spec)

    def test_options_subclass_postprocessor_options_and_forbid_unknown_keys(
        self, postprocessor_spec: ComponentSpec[Any], suite_postprocessor_options: dict[str, Any]
    ) -> None:
        _check_options_model(postprocessor_spec, PostprocessorOptions, suite_postprocessor_options)

    def test_is_a_postprocessor(self, postprocessor: Any) -> None:
        assert isinstance(postprocessor, Postprocessor), "a postprocessor is a callable (detections, frame)"

    @pytest.mark.parametrize("landmarks", [None, 5])
    def test_empty_in_empty_out(self, postprocessor: Any, frame: Frame, landmarks: int | None) -> None:
        out = postprocessor(Detections.empty(landmarks=landmarks), frame)
        assert isinstance(out, Detections), f"returned {type(out).__name__}, not Detections"
        assert len(out) == 0
        if landmarks is not None:
            assert out.landmarks is not None, "landmarks were dropped"
            assert out.landmarks.shape == (0, landmarks, 2)

    @pytest.mark.parametrize("landmarks", [False, True])
    def test_returns_detections_with_their_fields(self, postprocessor: Any, frame: Frame, landmarks: bool) -> None:
        given = self.random_detections(12, landmarks)
        out = postprocessor(given, frame)
        assert isinstance(out, Detections), f"returned {type(out).__name__}, not Detections"
        if self.filters_only:
            assert len(out) <= len(given), f"{len(out)} detections out of {len(given)}"
        if landmarks:
            assert out.landmarks is not None, "landmarks were dropped"
            assert out.landmarks.shape[1:] == (5, 2)
