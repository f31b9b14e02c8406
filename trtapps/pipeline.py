"""The pipeline: builds the stages from a validated config (or from objects) and runs them.

This is the only module that knows the order of the stages and moves data between them::

    Source ─► Batcher ─► App.preprocess ─► Runner.infer ─► App.decode ─► postprocess ─► Tracker ─► Sinks

The work overlaps in threads joined by bounded queues (back-pressure, never unbounded memory): one reader per
source and a dynamic batcher (:mod:`trtapps.batching`: many sources share each batch, each keeps its order), a
worker that runs the model on each batch, and the caller's thread, which finishes each frame (postprocess,
tracker) and writes the results to the sinks (``run()``) or receives them (iterating the pipeline). Every input
frame produces exactly one result, in input order per source: a frame that could not be read or processed is
recorded with its error; only live sources drop frames, counted. Ctrl-C stops the readers and the worker, and
the sinks are closed normally, so their files stay valid.

On the GPU data path the readers also copy each frame to device memory as they read it
(:class:`~trtapps.gpu.frames.DeviceFrameStager`), so the worker only enqueues kernels and inference, and the
copies of the next batch overlap inference of this one.

Two more ways to use a pipeline: :meth:`Pipeline.predict` for one image, and :meth:`Pipeline.submit` (thread-safe,
returns a :class:`~concurrent.futures.Future`) where concurrent requests are batched together.
"""

from __future__ import annotations

import logging
import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtapps.batching import Batcher
from trtapps.config.loader import load_config, validate_data
from trtapps.config.schema import PipelineConfig
from trtapps.context import RunContext
from trtapps.errors import (
    ConfigError,
    InputError,
    OutputError,
    PipelineClosedError,
    StageError,
    UserError,
    os_error_line,
)
from trtapps.heap import limit_heap_retention
from trtapps.lifecycle import ON_ERROR, ErrorAction
from trtapps.metrics import RunSummary, Stopwatch
from trtapps.plugins import PluginManager
from trtapps.postprocess import resolve_classes
from trtapps.registry import AppOptions, Options
from trtapps.runners.base import Runner, select_backend
from trtapps.stages import App, FrameFailure, Residency, Sink, Source, Tracker
from trtapps.structures import Detections, Frame, FrameResult, array_module, is_device_array, to_host
from trtapps.zoo import resolve_model

log = logging.getLogger("trtapps")

_END = object()

#: how long a partly filled batch waits for more frames by default when a live source is present (seconds)
LIVE_MAX_WAIT = 0.010
#: what to do about an output that cannot be written
WRITE_FIX = "choose an output folder you can write (--output, or the pipeline's output:) or change the sink's path"


@dataclass(frozen=True)
class PipelineInfo:
    """A read-only description of a built pipeline (given to lifecycle hooks and printed by the CLI)."""

    name: str
    app: str
    model: str
    backend: str
    device: str
    batch_size: int
    sources: tuple[str, ...]
    sinks: tuple[str, ...]
    tracker: str | None
    plugins: tuple[str, ...]


class Pipeline:
    """A built pipeline. Make one with :meth:`from_file`, :meth:`from_dict` or :meth:`from_objects`.

    Args:
        config: a validated :class:`PipelineConfig`.
        plugins: extra plugin objects registered on this pipeline's own plugin manager.
        manager: an existing plugin manager (default: a new one).
        sources, sinks: ready objects added to those the config describes.
        tracker: a factory ``(source_id) -> Tracker`` replacing the config's tracker.
        app, runner: ready objects replacing what the config would build.
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        plugins: Sequence[object] = (),
        manager: PluginManager | None = None,
        sources: Sequence[Source] | None = None,
        sinks: Sequence[Sink] | None = None,
        tracker: Callable[[int], Tracker] | None = None,
        app: App | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.config = config
        self.manager = manager or PluginManager(plugins)
        self.registries = self.manager.registries
        self.context = RunContext(
            output_dir=config.output_dir(),
            config_dir=config.config_dir,
            plugins_config=config.plugins,
            device=config.backend.device,
        )
        self.context.stash[ON_ERROR] = config.on_error
        self.manager.configure(config=config, context=self.context)
        #: the CUDA MPS control pipe of ``cuda_mps: start`` (``None``: not asked, or not possible)
        self.cuda_mps: str | None = None
        if config.cuda_mps == "start":  # before the runner: CUDA joins MPS at its first call in the process
            from trtapps.gpu.mps import start_for_run

            self.cuda_mps = start_for_run(log)

        self.runner = runner or self._build_runner()
        self.context.backend = self.runner.backend
        self.app = app or self._build(self.registries.app, config.app)
        self.app.bind(self.runner)
        self.context.labels = list(self.app.labels)
        limit = self.runner.max_batch
        self.batch_size = min(config.app.batch_size, limit) if limit else config.app.batch_size
        if limit and config.app.batch_size > limit:
            log.info("%s accepts at most batch %d; using batch %d", self.runner.model_path.name, limit, limit)
        self.postprocessors = self._build_postprocessors()
        self._tracker_factory = tracker or self._tracker_factory_from_config()
        self._extra_sources = list(sources or [])
        self._extra_sinks = list(sinks or [])
        self._lock = threading.Lock()  # one batch at a time through the runner
        self._service: _Service | None = None
        self._service_lock = threading.Lock()
        #: the GPU data path: frames cross to the device once and only compact results come back
        self.device_path = self.runner.residency is Residency.DEVICE and bool(
            getattr(self.app, "supports_device", False)
        )
        self._uploader: Any = None
        self._closed = False

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def from_file(
        cls, path: str | Path, *, overrides: Mapping[str, Any] | None = None, plugins: Sequence[object] = (), **kw: Any
    ) -> Pipeline:
        """Build from a YAML pipeline file (``overrides`` replace top-level sections, e.g. ``source``)."""
        manager = PluginManager(plugins)
        config = load_config(path, manager.registries, overrides=overrides)
        return cls(config, manager=manager, **kw)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, plugins: Sequence[object] = (), **kw: Any) -> Pipeline:
        """Build from plain data shaped like a pipeline file."""
        manager = PluginManager(plugins)
        config = validate_data(dict(data), manager.registries, require_source=False)
        return cls(config, manager=manager, **kw)

    @classmethod
    def from_objects(
        cls,
        *,
        app: AppOptions | Mapping[str, Any],
        source: Options | Mapping[str, Any] | Source | Sequence[Any] | None = None,
        sinks: Sequence[Options | Mapping[str, Any] | Sink] = (),
        postprocess: Sequence[Options | Mapping[str, Any]] = (),
        tracker: Options | Mapping[str, Any] | None = None,
        backend: str | Options = "auto",
        output: str | Path | None = None,
        plugins: Sequence[object] = (),
        on_error: str = "skip",
        cuda_mps: str = "off",
    ) -> Pipeline:
        """Assemble a pipeline in Python: each component as an options model, a mapping, or a ready object.

        Example::

            pipe = Pipeline.from_objects(
                app={"type": "yolo", "model": "yolov8n.onnx", "conf_threshold": 0.3},
                source={"type": "images", "path": "photos/"},
                sinks=[{"type": "jsonl", "path": "out.jsonl"}],
            )
            summary = pipe.run()
        """
        ready_sources = [s for s in _as_list(source) if not isinstance(s, (Options, Mapping))]
        ready_sinks = [s for s in sinks if not isinstance(s, (Options, Mapping))]
        data: dict[str, Any] = {
            "app": _dump(app),
            "sources": [_dump(s) for s in _as_list(source) if isinstance(s, (Options, Mapping))] or None,
            "sinks": [_dump(s) for s in sinks if isinstance(s, (Options, Mapping))],
            "postprocess": [_dump(p) for p in postprocess],
            "tracker": _dump(tracker) if tracker is not None else None,
            "backend": backend if isinstance(backend, str) else _dump(backend),
            "output": str(output) if output is not None else None,
            "on_error": on_error,
            "cuda_mps": cuda_mps,
        }
        manager = PluginManager(plugins)
        # a pipeline used only for predict()/submit() needs no source; iterating one without raises
        config = validate_data({k: v for k, v in data.items() if v is not None}, manager.registries,
                               require_source=False)
        return cls(config, manager=manager, sources=ready_sources, sinks=ready_sinks)

    def _build(self, registry: Any, options: Options) -> Any:
        spec = registry.get(options.type)
        try:
            return spec.factory(options, self.context)
        except UserError:
            raise
        except OSError as exc:
            if registry.kind == "sink":
                raise OutputError.from_os_error(f"sink {options.type!r}", exc, WRITE_FIX) from exc
            if registry.kind == "source":  # e.g. a folder of images that cannot be listed
                raise InputError(f"source {options.type!r}: {os_error_line(exc)}; check the path and its "
                                 "permissions") from exc
            raise StageError(f"{registry.kind} {options.type!r}", spec.plugin or None, exc) from exc
        except Exception as exc:
            raise StageError(f"{registry.kind} {options.type!r}", spec.plugin or None, exc) from exc

    def _build_runner(self) -> Runner:
        from trtapps.gpu.graphs import resolve_cuda_graph

        spec = select_backend(self.config.backend.type, self.registries.backend)
        fields = self.config.backend.model_dump(exclude={"type"})
        explicit = self.config.backend.type != "auto"
        # graphs asked of a backend that cannot replay them: an error when named, a warning under auto
        graph = resolve_cuda_graph(spec.name, bool(fields.pop("cuda_graph", False)), explicit=explicit)
        if graph:
            fields["cuda_graph"] = True
        if not explicit:
            fields = {k: v for k, v in fields.items() if k in spec.options.model_fields}
        if "max_batch" in spec.options.model_fields and fields.get("max_batch") is None:
            fields["max_batch"] = self.config.app.batch_size  # device buffers / engine profile for the run's batch
        options = spec.options.model_validate({**fields, "type": spec.name})
        model_path = resolve_model(self.config.app.model, self.context.config_dir)
        runner: Runner = spec.factory(options, self.context, model_path)
        log.info("backend %s (%s) for %s", runner.backend, runner.device, model_path.name)
        return runner

    def _build_postprocessors(self) -> list[Callable[[Detections, Frame], Detections]]:
        steps: list[Callable[[Detections, Frame], Detections]] = []
        if self.config.app.classes and not self.app.applies_classes:
            ids = np.asarray(resolve_classes(self.config.app.classes, self.app.labels, "app.classes"), np.int32)

            def keep_classes(d: Detections, f: Frame) -> Detections:
                xp = array_module(d.class_ids)
                return d[xp.isin(d.class_ids, xp.asarray(ids))]

            steps.append(keep_classes)
        steps.extend(self._build(self.registries.postprocessor, o) for o in self.config.postprocess)
        return steps

    def _tracker_factory_from_config(self) -> Callable[[int], Tracker] | None:
        options = self.config.tracker
        if options is None:
            return None
        spec = self.registries.tracker.get(options.type)
        return lambda source_id: spec.factory(options, self.context)

    def _build_each(self, registry: Any, options: Sequence[Options], close: Callable[[Any], Any]) -> list[Any]:
        """Build one component per options entry; when one fails, those already built are closed first."""
        built: list[Any] = []
        try:
            for entry in options:
                built.append(self._build(registry, entry))  # noqa: PERF401 (one at a time: a failure keeps those built)
        except BaseException:
            for component in built:
                _quietly(close, component)
            raise
        return built

    def build_sources(self) -> list[Source]:
        """The sources of this run (built on demand, so a pipeline used only for ``predict`` needs none)."""
        built = self._build_each(self.registries.source, self.config.sources, lambda source: source.close())
        built += self._extra_sources
        nvdec = sys.modules.get("trtapps.gpu.nvdec")  # loaded when a video source chose NVDEC
        hint = nvdec.mps_hint(built) if nvdec is not None else None
        if hint is not None:
            self.context.logger.warning("%s", hint)
        return built

    def build_sinks(self) -> list[Sink]:
        built: list[Sink] = self._build_each(self.registries.sink, self.config.sinks, lambda sink: sink.close(None))
        return built + list(self._extra_sinks)

    def info(self, sources: Sequence[Source] = (), sinks: Sequence[Sink] = ()) -> PipelineInfo:
        return PipelineInfo(
            name=self.config.name or (self.config.path.stem if self.config.path else "pipeline"),
            app=self.config.app.type,
            model=str(self.runner.model_path),
            backend=self.runner.backend,
            device=self.runner.device,
            batch_size=self.batch_size,
            sources=tuple(getattr(s, "name", type(s).__name__) for s in sources),
            sinks=tuple(type(s).__name__ for s in sinks),
            tracker=self.config.tracker.type if self.config.tracker else None,
            plugins=tuple(sorted(i.name for i in self.manager.plugin_infos())),
        )

    # -- the batch step (shared by runs and the single-image service) --------------------------------------------------
    def process_batch(
        self,
        frames: Sequence[Frame],
        summary: RunSummary | None = None,
        trackers: dict[int, Tracker] | None = None,
        keep_images: bool = False,
    ) -> list[FrameResult]:
        """Run one batch of frames through preprocess → runner → decode → postprocess → tracker."""
        summary = summary if summary is not None else RunSummary()
        detections = self._detect(frames, summary)
        return [self._finish_frame(f, d, summary, trackers, keep_images) for f, d in zip(frames, detections)]

    def _detect(self, frames: Sequence[Frame], summary: RunSummary) -> Sequence[Detections | StageError]:
        """The model's detections for each frame, or the stage error for every frame of a batch that failed."""
        return self._detect_async(frames, summary)()

    def _detect_async(
        self, frames: Sequence[Frame], summary: RunSummary
    ) -> Callable[[], Sequence[Detections | StageError]]:
        """Queue the batch's model work; the returned function waits for it and gives :meth:`_detect`'s result.

        On the GPU data path everything up to the async download of the results is queued on the run's stream, so
        the worker can queue the next batch while the consumer waits for this one's results (the GPU never idles
        while the host finishes frames). The host path runs the whole batch here.
        """
        done: Sequence[Detections | StageError]
        try:
            with self._lock:
                if not self.device_path:
                    done = self._process_on_host(frames, summary)
                    return lambda: done
                finish = self._submit_on_device(frames, summary)
        except (KeyboardInterrupt, UserError):
            raise
        except Exception as exc:
            done = self._batch_failed(frames, exc)
            return lambda: done

        def complete() -> Sequence[Detections | StageError]:
            try:
                with Stopwatch(summary, "results", len(frames)):
                    return finish()
            except (KeyboardInterrupt, UserError):
                raise
            except Exception as exc:
                return self._batch_failed(frames, exc)

        return complete

    def _batch_failed(self, frames: Sequence[Frame], exc: Exception) -> list[StageError]:
        """The app's stage error, once for every frame of the batch."""
        app_type = self.config.app.type
        plugin = self.registries.app.get(app_type).plugin if app_type in self.registries.app else None
        error = StageError(f"app {self.config.app.type!r}", plugin, exc, frame=frames[0].index)
        return [error] * len(frames)

    def _process_on_host(self, frames: Sequence[Frame], summary: RunSummary) -> list[Detections]:
        """Host preprocessing and decoding (arrays go to a device runner and back when it needs them)."""
        n = len(frames)
        with Stopwatch(summary, "preprocess", n):
            inputs, metas = self.app.preprocess([_on_host(f) for f in frames])
            inputs = self._to_runner(inputs)
        with Stopwatch(summary, "infer", n):
            outputs = self.runner.infer(inputs)
        with Stopwatch(summary, "decode", n):
            if self.runner.residency is Residency.DEVICE:
                outputs = {k: to_host(v) for k, v in outputs.items()}
            return self.app.decode(outputs, frames, metas)

    def _submit_on_device(
        self, frames: Sequence[Frame], summary: RunSummary
    ) -> Callable[[], list[Detections]]:
        """The GPU data path: preprocessing kernel, inference, decode/NMS kernels, one async download.

        Frames read by a run arrive already on the device (copied by their reader thread, the stream waits for
        those copies on the GPU); frames given to ``predict``/``submit`` are uploaded here in one copy.
        Everything is enqueued on the run's stream without a host synchronisation; the returned function waits
        for the batch's results (the only wait). Stage times are host enqueue times; the wait is ``results``.
        """
        from trtapps.gpu.frames import DeviceFrameStager, FrameUploader
        from trtapps.gpu.stream import pipeline_stream

        n = len(frames)
        stream = pipeline_stream(self.context, self.context.device)
        if self._uploader is None:
            self._uploader = FrameUploader(device=self.context.device)
        with stream:
            with Stopwatch(summary, "upload", n):
                DeviceFrameStager.wait(frames, stream)
                images = self._uploader.upload([f.image for f in frames], stream)
            with Stopwatch(summary, "preprocess", n):
                inputs, metas = self.app.preprocess_device(images, frames, stream)
            with Stopwatch(summary, "infer", n):
                outputs = self.runner.infer(inputs, stream)
            with Stopwatch(summary, "decode", n):
                return self.app.decode_device_async(outputs, frames, metas, stream)

    def _to_runner(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self.runner.residency is Residency.DEVICE:
            import cupy

            return {k: v if is_device_array(v) else cupy.asarray(v) for k, v in inputs.items()}
        return {k: to_host(v) for k, v in inputs.items()}

    def _finish_frame(
        self,
        frame: Frame,
        dets: Detections | StageError,
        summary: RunSummary,
        trackers: dict[int, Tracker] | None,
        keep_images: bool,
    ) -> FrameResult:
        if isinstance(dets, StageError):
            return self._failed(frame, dets)
        stage = "postprocess"
        try:
            with Stopwatch(summary, "postprocess", 1):
                for step in self.postprocessors:
                    dets = step(dets, frame)
            if trackers is not None and self._tracker_factory is not None:
                stage = "tracker"
                tracker = trackers.get(frame.source_id)
                if tracker is None:
                    tracker = trackers[frame.source_id] = self._tracker_factory(frame.source_id)
                with Stopwatch(summary, "track", 1):
                    dets = tracker.update(dets, frame)
        except (KeyboardInterrupt, UserError):
            raise
        except Exception as exc:
            return self._failed(frame, StageError(stage, None, exc, frame=frame.index))
        return FrameResult(
            source=frame.source,
            index=frame.index,
            width=frame.width,
            height=frame.height,
            detections=dets.to_host(),
            source_id=frame.source_id,
            image=frame.host_image() if keep_images else None,
            timestamp=frame.timestamp,
            labels=self.app.labels,
        )

    def _failed(self, frame: Frame, error: StageError) -> FrameResult:
        action = self.manager.handle_stage_error(error=error, context=self.context)
        if action == ErrorAction.ABORT:
            raise error
        return FrameResult(
            source=frame.source, index=frame.index, width=frame.width, height=frame.height,
            error=str(error), source_id=frame.source_id, labels=self.app.labels,
        )

    # -- running over sources ------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[FrameResult]:
        return self.iter_results()

    def iter_results(
        self,
        *,
        write: bool = True,
        summary: RunSummary | None = None,
        sources: Sequence[Source] | None = None,
    ) -> Generator[FrameResult, None, None]:
        """Run the sources through the pipeline, yielding every frame's result in input order per source.

        With ``write=True`` (default) the results also go to the sinks, which are closed when the iteration ends,
        is abandoned, or is interrupted. ``sources`` replaces :meth:`build_sources` (e.g. to count frames first).
        Several sources are read at once and share batches; results of different sources interleave.
        """
        summary = summary if summary is not None else RunSummary()
        summary.backend, summary.device = self.runner.backend, self.runner.device
        sources = list(sources) if sources is not None else self.build_sources()
        sinks: list[Sink] = []
        stager: Any = None
        try:  # until the run starts, a failure closes what was already opened here
            summary.sources = [_describe(s) for s in sources]
            summary.cuda_mps = self.cuda_mps
            if not sources:
                raise ConfigError("no source given; add a source to the pipeline or pass --source")
            sinks = self.build_sinks() if write else []
            keep_images = any(getattr(s, "needs_images", False) for s in sinks)
            info = self.info(sources, sinks)
            stop = threading.Event()
            queued = max(2, self.batch_size * self.config.queue_size)  # frames waiting for the model, all sources
            per_source = max(2, -(-queued // len(sources)))
            in_flight = max(2, self.config.queue_size)  # batches between the worker and the consumer
            stream: Any = None
            if self.device_path:
                from trtapps.gpu.frames import DeviceFrameStager
                from trtapps.gpu.stream import pipeline_stream

                # a device slot for every frame that can be queued, batched, in flight or being finished at once
                slots = per_source * len(sources) + self.batch_size * (in_flight + 2) + len(sources)
                stager = DeviceFrameStager(slots, device=self.context.device)
                stream = pipeline_stream(self.context, self.context.device)
                allocator = stager.frame_allocator()
                if allocator is not None:  # sources that can decode into page-locked buffers do so: one DMA per frame
                    for source in sources:
                        offer = getattr(source, "use_frame_allocator", None)
                        if offer is not None:
                            offer(allocator, max_buffers=slots)
            if self.config.max_wait_ms is not None:
                max_wait = self.config.max_wait_ms / 1000.0
            else:  # files gain nothing from partial batches; live frames should not wait long for company
                max_wait = LIVE_MAX_WAIT if any(getattr(s, "live", False) for s in sources) else math.inf
            batcher = Batcher(
                sources, max_batch=self.batch_size, max_wait=max_wait, capacity=per_source,
                summary=summary, stop=stop, key=self.app.batch_key,
                stage=stager.stage if stager is not None else None,
                discard=(lambda frame: stager.release(frame, None)) if stager is not None else None,
            )
            results_q: queue.Queue[Any] = queue.Queue(maxsize=in_flight)
            errors: list[BaseException] = []
            worker = threading.Thread(
                target=self._work, args=(batcher, results_q, stop, summary, errors), name="trtapps-worker", daemon=True
            )
            trackers: dict[int, Tracker] = {}
            limit_heap_retention()  # frame-sized buffers freed in a long run go back to the OS (see trtapps.heap)
            self.manager.pipeline_started(info=info, context=self.context)
        except BaseException as exc:
            summary.error = f"{type(exc).__name__}: {exc}"
            if stager is not None:
                _quietly(stager.close)
            for source in sources:
                _quietly(source.close)
            for sink in sinks:
                _quietly(sink.close, summary)
            raise
        batcher.start()
        worker.start()
        try:
            while True:
                item = results_q.get()
                if item is _END:
                    break
                items, pending = item
                found = iter(pending())
                finished: list[Frame] = []  # their device frames go back after the batch, with one event
                try:
                    for entry in items:
                        if isinstance(entry, FrameFailure):
                            result = FrameResult(entry.source, entry.index, 0, 0, error=entry.error,
                                                 source_id=entry.source_id, labels=self.app.labels)
                        else:
                            finished.append(entry)
                            result = self._finish_frame(entry, next(found), summary, trackers, keep_images)
                        with Stopwatch(summary, "write", 1):
                            for sink in sinks:
                                try:
                                    sink.write(result)
                                except OSError as exc:
                                    raise OutputError.from_os_error(f"sink {type(sink).__name__}", exc,
                                                                    WRITE_FIX) from exc
                        summary.frames_out += 1
                        if result.error is not None:
                            summary.add_failure(result.source, result.index, result.error)
                        elif result.detections is not None:
                            summary.detections += len(result.detections)
                        yield result
                finally:
                    if stager is not None:
                        stager.release_all(finished, stream)
            errors.extend(batcher.errors)
            if errors:
                raise errors[0]
        except KeyboardInterrupt:
            summary.error = "interrupted"
            raise
        except GeneratorExit:  # the consumer stopped iterating
            summary.error = summary.error or "abandoned"
            raise
        except BaseException as exc:
            summary.error = summary.error or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            stop.set()
            if stager is not None:
                stager.cancel()
            batcher.wake()
            _drain(results_q)
            worker.join(timeout=30)
            readers_done = batcher.join(timeout=30)  # a live source may sit in a blocking read up to its timeout
            batcher.drain()
            if stager is not None:
                summary.staging = {"direct": stager.direct, "copied": stager.copied}
                if readers_done and not worker.is_alive():
                    stager.close()
                else:
                    log.warning("a pipeline thread is still running; its GPU frame memory is not freed")
            summary.finished = time.perf_counter()
            # every frame read is written, dropped, or (a run stopped early) unfinished
            summary.frames_unfinished = max(0, summary.frames_in - summary.frames_out - summary.frames_dropped)
            summary.sources = [_describe(s) for s in sources]  # again: what only the end knows (undelivered)
            for source in sources:
                _quietly(source.close)
            for tracker in trackers.values():
                _close(tracker)  # a tracker with a model of its own (DeepSORT's ReID) lets it go
            unwritten: list[OSError] = []
            for sink in sinks:
                try:
                    sink.close(summary)
                except OSError as exc:  # an output that could not be completed: the run must not look finished
                    log.error("sink %s: %s", type(sink).__name__, exc)
                    unwritten.append(exc)
                except Exception as exc:
                    log.warning("while closing: %s: %s", type(exc).__name__, exc)
            self.manager.pipeline_finished(info=info, summary=summary, context=self.context)
            if unwritten and summary.error is None:  # otherwise the error already on its way says why
                raise OutputError.from_os_error("closing the outputs", unwritten[0], WRITE_FIX)

    def run(
        self,
        on_result: Callable[[FrameResult, RunSummary], None] | None = None,
        sources: Sequence[Source] | None = None,
    ) -> RunSummary:
        """Process every source to the end, writing the sinks; returns the run summary."""
        summary = RunSummary()
        results = self.iter_results(summary=summary, sources=sources)
        try:
            for result in results:
                if on_result is not None:
                    on_result(result, summary)
        except BaseException as exc:
            # a failure or Ctrl-C in on_result goes into the run, whose own handlers name it and close the sinks
            # and threads before it goes on (a finished run re-raises it at once); throw() never returns here
            results.throw(exc)
            raise
        return summary

    def _work(
        self,
        batcher: Batcher,
        out: queue.Queue[Any],
        stop: threading.Event,
        summary: RunSummary,
        errors: list[BaseException],
    ) -> None:
        """The inference thread: batches in, ``(items, detections)`` out; the consumer finishes each frame."""
        try:
            while not stop.is_set():
                items = batcher.next_batch()
                if items is None:
                    break
                frames = [item for item in items if isinstance(item, Frame)]
                # the consumer waits for the results, so this thread goes on to queue the next batch at once
                pending = self._detect_async(frames, summary) if frames else list
                if not _put(out, (items, pending), stop):
                    return
        except BaseException as exc:
            errors.append(exc)
        finally:
            _put(out, _END, stop)

    # -- single images -----------------------------------------------------------------------------------------------
    def predict(self, image: np.ndarray | str | Path) -> FrameResult:
        """Detections for one image (a BGR array or a file path), synchronously."""
        return self.process_batch([_as_frame(image)])[0]

    def submit(self, image: np.ndarray | str | Path) -> Future[FrameResult]:
        """Queue one image; returns a future. Safe from many threads: concurrent requests share batches."""
        with self._service_lock:
            if self._closed:
                raise PipelineClosedError("the pipeline is closed; build a new one")
            if self._service is None:
                self._service = _Service(self)
                self._service.start()
            service = self._service
        return service.submit(_as_frame(image))  # fails the same way if close() stops it meanwhile

    def close(self) -> None:
        """Stop the single-image service and release the model."""
        with self._service_lock:
            self._closed = True
            service, self._service = self._service, None
        if service is not None:
            service.stop()
        if self._uploader is not None:
            _quietly(self._uploader.close)
            self._uploader = None
        _quietly(self.runner.close)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Service(threading.Thread):
    """Batches single-image requests from many threads (tensorRT_Pro's commit/future model)."""

    def __init__(self, pipeline: Pipeline, max_wait: float = 0.002) -> None:
        super().__init__(name="trtapps-service", daemon=True)
        self.pipeline = pipeline
        self.max_wait = max_wait
        self.requests: queue.Queue[Any] = queue.Queue(maxsize=max(8, pipeline.batch_size * 4))
        self._stop_event = threading.Event()

    def submit(self, frame: Frame) -> Future[FrameResult]:
        future: Future[FrameResult] = Future()
        # a full queue makes the caller wait for room, unless the service stops meanwhile
        if self._stop_event.is_set() or not _put(self.requests, (frame, future), self._stop_event):
            raise PipelineClosedError("the pipeline is closed; build a new one")
        if self._stop_event.is_set():  # stopped while this was put: stop() may have drained already
            self._fail_queued()
        return future

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        self._fail_queued()

    def _fail_queued(self) -> None:
        """Fail whatever is still queued (each request is taken once, by whoever gets it)."""
        while True:
            try:
                _, future = self.requests.get_nowait()
            except queue.Empty:
                return
            future.set_exception(PipelineClosedError("the pipeline was closed before this request ran"))

    def run(self) -> None:
        bs = self.pipeline.batch_size
        while not self._stop_event.is_set():
            try:
                first = self.requests.get(timeout=0.1)
            except queue.Empty:
                continue
            pending = [first]
            deadline = time.perf_counter() + self.max_wait
            while len(pending) < bs:
                try:
                    pending.append(self.requests.get(timeout=max(0.0, deadline - time.perf_counter())))
                except queue.Empty:
                    break
            groups: dict[Any, list[tuple[Frame, Future[FrameResult]]]] = {}
            for frame, future in pending:
                groups.setdefault(self.pipeline.app.batch_key(frame), []).append((frame, future))
            for group in groups.values():
                try:
                    results = self.pipeline.process_batch([f for f, _ in group])
                except BaseException as exc:
                    for _, future in group:
                        future.set_exception(exc)
                    continue
                for (_, future), result in zip(group, results):
                    future.set_result(result)


# -- helpers ----------------------------------------------------------------------------------------------------------
def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put with back-pressure; gives up (False) once *stop* is set."""
    while True:
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            if stop.is_set():
                return False


def _drain(q: queue.Queue[Any]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def _describe(source: Source) -> dict[str, Any]:
    """A source's entry in the run summary: name, type and what its optional ``describe()`` says."""
    entry: dict[str, Any] = {"name": getattr(source, "name", type(source).__name__), "type": type(source).__name__}
    describe = getattr(source, "describe", None)
    if callable(describe):
        try:
            entry.update(describe())
        except Exception as exc:  # a plugin's describe() must not fail the run
            entry["describe_error"] = f"{type(exc).__name__}: {exc}"
    return entry


def _close(component: Any) -> None:
    """Close *component* if it has a ``close()`` (a tracker may have one)."""
    close = getattr(component, "close", None)
    if close is not None:
        _quietly(close)


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:
        log.warning("while closing: %s: %s", type(exc).__name__, exc)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _dump(item: Any) -> Any:
    if isinstance(item, Options):
        return item.model_dump()
    return dict(item) if isinstance(item, Mapping) else item


def _on_host(frame: Frame) -> Frame:
    """*frame* with host BGR pixels (the source's own when the frame was copied to the GPU; NV12 converted)."""
    if not is_device_array(frame.image):
        return frame
    return Frame(frame.host_image(), frame.source, frame.index, frame.timestamp, frame.source_id, frame.meta)


def _as_frame(image: np.ndarray | str | Path) -> Frame:
    if isinstance(image, (str, Path)):
        import cv2

        data = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if data is None:
            raise InputError(f"{image}: cannot read the image (missing, empty or not an image)")
        return Frame(data, source=str(image))
    return Frame(np.ascontiguousarray(image), source="<array>")
