"""The supervisor: starts, feeds and restarts sandboxed workers.

One :class:`Supervisor` per service. Each loaded instance gets a
:class:`SandboxedRunner` with up to ``limits.workers`` worker processes, each
holding the model once. Concurrent ``run`` calls take an idle worker each;
a worker that crashes, exceeds a limit or times out fails only its own
request with :class:`~cleanroom.errors.InferenceFailed`, and is restarted
in the background while the others keep serving.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from cleanroom.errors import (
    Conflict,
    InferenceFailed,
    ModelRejected,
    NotFound,
    ServiceUnavailable,
)
from cleanroom.runtime.base import (
    ModelRunner,
    ModelSignature,
    RuntimeLimits,
    Tensors,
)
from cleanroom.runtime.memory import wipe
from cleanroom.runtime.sandbox.answers import DEFAULT_ANSWER_BUDGET, AnswerBudget
from cleanroom.runtime.sandbox.confine import forbid_dumping
from cleanroom.runtime.sandbox.process import WorkerProcess
from cleanroom.runtime.sandbox.report import (
    USER_NAMESPACE,
    SandboxReport,
    has_confinement,
    mechanism_of,
    namespace_strength,
)
from cleanroom.runtime.tensors import check_inputs
from cleanroom.wire.formats import ModelFormat

__all__ = [
    "ModelLoad",
    "ModelSource",
    "NetworkIsolation",
    "SandboxReport",
    "SandboxedRunner",
    "Supervisor",
]

log = logging.getLogger("cleanroom.sandbox")

NetworkIsolation = Literal["auto", "seccomp"]
# Gives the model's plaintext again, in a fresh buffer, to restart a worker
# (the service re-opens its sealed copy); the runner wipes it once sent.
ModelSource = Callable[[], bytearray]


# Requests one instance may have waiting for a free worker, per worker: past
# them a request is refused at once (503) instead of holding a service thread
# for up to request_timeout_s. extra["sandbox.max_waiting"] sets the total.
WAITING_PER_WORKER = 4


class ModelLoad:
    """An instance's workers receiving a model as it arrives, piece by piece.

    :meth:`write` hands each piece to every worker (each receives it into its
    own buffer); :meth:`finish` tells them the model is complete and may be
    loaded, and returns the runner serving it; :meth:`abort` kills them, so a
    model that is incomplete, fails authentication or is refused is never
    parsed. Nothing of the model is kept here.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        instance_id: str,
        fmt: ModelFormat,
        size: int,
        limits: RuntimeLimits,
        reload: ModelSource | None = None,
    ) -> None:
        if size > limits.max_model_bytes:
            raise ModelRejected(
                f"the model has {size} bytes, over the limit of {limits.max_model_bytes}"
            )
        supervisor.check_free(instance_id)
        self._supervisor = supervisor
        self._instance_id = instance_id
        self._fmt = fmt
        self._size = size
        self._sent = 0
        self._limits = limits
        self._reload = reload
        self._runner: SandboxedRunner | None = None
        self._workers = [supervisor.new_worker(fmt, limits) for _ in range(max(1, limits.workers))]
        try:
            for worker in self._workers:
                worker.begin(size)
        except BaseException:
            self.abort()
            raise

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """The next piece of the model, sent to every worker before this returns."""
        self._sent += memoryview(data).nbytes
        try:
            if self._sent > self._size:
                raise ValueError("the model is longer than its declared size")
            for worker in self._workers:
                worker.send(data)
        except BaseException:
            self.abort()
            raise

    def finish(self, model: bytes | bytearray | memoryview = b"") -> SandboxedRunner:
        """Let the workers load the complete model; the runner once all accepted it.

        Without a reload source, *model* (the whole plaintext) is kept to restart
        workers. Raises ModelRejected if a worker refused the model.
        """
        try:
            if self._sent != self._size:
                raise ValueError("the model is shorter than its declared size")
            errors: list[BaseException] = []

            def load(worker: WorkerProcess) -> None:
                try:
                    worker.load()
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in self._workers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:
                rejected = [e for e in errors if isinstance(e, ModelRejected)]
                raise rejected[0] if rejected else errors[0]
            for worker in self._workers:
                self._supervisor.check_confinement(worker.sandbox)
            # Each worker parsed the same model: any that says otherwise is not
            # to be believed, and outputs are checked against this signature.
            if any(w.model_signature != self._workers[0].model_signature for w in self._workers):
                raise ModelRejected("the workers loading the model disagree on its signature")
            runner = SandboxedRunner(
                self._supervisor, self._fmt, self._workers, self._limits, model, self._reload
            )
            self._supervisor.register(self._instance_id, runner)
            self._runner = runner
        except BaseException:
            self.abort()
            raise
        return runner

    def abort(self) -> None:
        """Stop the workers, and unload the runner if :meth:`finish` made one; whatever
        they received is gone with them."""
        if self._runner is not None:
            self._supervisor.unload_runner(self._instance_id, self._runner)
            self._runner = None
        for worker in self._workers:
            worker.kill()


class SandboxedRunner:
    """A :class:`~cleanroom.runtime.base.ModelRunner` backed by sandboxed workers."""

    def __init__(
        self,
        supervisor: Supervisor,
        fmt: ModelFormat,
        workers: list[WorkerProcess],
        limits: RuntimeLimits,
        model: bytes | bytearray | memoryview,
        reload: ModelSource | None = None,
    ) -> None:
        """Serve with *workers*, started and loaded (see :class:`ModelLoad`).

        With a *reload* source nothing is kept: a restart asks it for the model.
        Without one, *model* (the plaintext, in memory only) restarts workers.
        """
        self._supervisor = supervisor
        self._fmt = fmt
        self._reload = reload
        self._model: bytes | bytearray | memoryview = b"" if reload is not None else model
        self._limits = limits
        self._idle: queue.Queue[WorkerProcess] = queue.Queue()
        self._all: list[WorkerProcess] = list(workers)
        self._closed = False
        self._lock = threading.Lock()
        self._restarting: list[threading.Thread] = []
        self.restarts = 0
        self._max_waiting = int(
            limits.extra.get("sandbox.max_waiting", WAITING_PER_WORKER * len(workers))
        )
        self._waiting = 0
        self._signature = workers[0].model_signature
        for worker in workers:
            self._idle.put(worker)

    def _start(self, worker: WorkerProcess) -> None:
        if self._reload is None:
            worker.start(self._model)
            return
        plaintext = self._reload()
        try:
            worker.start(plaintext)
        finally:
            wipe(plaintext)

    @property
    def signature(self) -> ModelSignature:
        return self._signature

    @property
    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._all if w.pid is not None and w.alive]

    def ready(self) -> bool:
        return not self._closed and any(w.alive for w in list(self._all))

    def run(self, inputs: Tensors) -> Tensors:
        return self.run_timed(inputs)[0]

    def run_timed(self, inputs: Tensors) -> tuple[Tensors, int | None]:
        """:meth:`run`, and the model's own run time inside the worker in ns.

        The difference to the whole call is the hand-off: checks, the copies
        through the shared slot and the two wake-ups.
        """
        if self._closed:
            raise InferenceFailed("the model has been unloaded")
        feed = check_inputs(inputs, self._signature.inputs)
        timeout = float(self._limits.request_timeout_s)
        deadline = time.monotonic() + timeout
        worker = self._take_worker(timeout)
        if not worker.alive:
            self._restart(worker, background=False)
            if not worker.alive:
                self._idle.put(worker)
                raise InferenceFailed("the model's worker could not be restarted")
        # The timeout covers the whole request, waiting for a worker included.
        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            outputs, run_ns = worker.run_timed(feed, remaining, limit_s=timeout)
        except BaseException:
            # A worker that failed, broke the protocol or sent outputs its model
            # does not declare was stopped (run_timed): replace it, never reuse it.
            # One that failed a run past its CPU share asked to be replaced too.
            if not worker.alive or worker.needs_recycle:
                self._restart(worker, background=True)
            else:
                self._idle.put(worker)
            raise
        if worker.needs_recycle:
            self._restart(worker, background=True)
        else:
            self._idle.put(worker)
        return outputs, run_ns

    def _take_worker(self, timeout: float) -> WorkerProcess:
        """A free worker, waited for at most *timeout* s by at most ``max_waiting`` requests."""
        with self._lock:
            if self._waiting >= self._max_waiting:
                raise ServiceUnavailable(
                    f"the instance is busy: {self._waiting} requests are already waiting"
                    " for its workers",
                    remedy="retry later, or ask the model owner for more workers",
                )
            self._waiting += 1
        try:
            return self._idle.get(timeout=timeout)
        except queue.Empty:
            raise InferenceFailed(
                f"no worker became free within {timeout:g} s; the instance is overloaded"
            ) from None
        finally:
            with self._lock:
                self._waiting -= 1

    def _restart(self, worker: WorkerProcess, *, background: bool) -> None:
        def revive() -> None:
            worker.kill()
            if not self._closed:
                with self._lock:
                    self.restarts += 1
                try:
                    self._start(worker)
                    self._supervisor.check_confinement(worker.sandbox)
                    if worker.model_signature != self._signature:
                        raise ModelRejected("a restarted worker reports another signature")
                except Exception as exc:
                    # Left dead: the next request that takes it tries again. Named by
                    # type only (a model's own answer never reaches a log).
                    log.warning(
                        "a sandboxed worker could not be restarted (%s); the next request "
                        "that takes it tries again",
                        type(exc).__name__,
                    )
                    worker.kill()
            if self._closed:
                worker.stop()
            if background:
                self._idle.put(worker)

        if background:
            thread = threading.Thread(target=revive, daemon=True, name="cleanroom-worker-restart")
            with self._lock:
                self._restarting = [t for t in self._restarting if t.is_alive()] + [thread]
            thread.start()
        else:
            revive()

    def probe(self) -> dict[str, Any]:
        """Run the sandbox probe inside one of this runner's workers."""
        worker = self._idle.get(timeout=float(self._limits.request_timeout_s))
        try:
            return worker.probe()
        finally:
            if not worker.alive:
                self._restart(worker, background=True)
            else:
                self._idle.put(worker)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            restarting = list(self._restarting)
        for thread in restarting:
            thread.join()
        for worker in list(self._all):
            worker.stop()
        self._model = b""


class Supervisor:
    """Starts, restarts and stops the sandboxed workers of every instance.

    On construction it makes the service process non-dumpable, then a probe
    worker checks the confinement this host allows and that it really holds
    (a socket, an ``execve``, a file write, reading the service's memory and
    signalling the service are tried from inside and must all fail). Without
    that, the supervisor refuses to start
    (:class:`~cleanroom.errors.ServiceUnavailable`), unless
    ``unsafe_allow_unconfined`` is set, which is for development only.

    *network* ``"auto"`` gives each worker its own network namespace when the
    kernel allows it, with the seccomp filter in every case; ``"seccomp"``
    skips the namespace (the fallback, selectable to test it).
    """

    def __init__(
        self,
        limits: RuntimeLimits,
        *,
        network: NetworkIsolation = "auto",
        unsafe_allow_unconfined: bool = False,
    ) -> None:
        self.limits = limits
        self.network = network
        self.unsafe_allow_unconfined = unsafe_allow_unconfined
        # The service holds keys and plaintext: no core dumps, and no process of
        # the same user without CAP_SYS_PTRACE (a worker) may read its memory
        # through /proc/<pid>/mem or attach to it. If that fails, the probe below
        # finds the memory readable and the supervisor refuses to start.
        with contextlib.suppress(OSError, AttributeError):
            forbid_dumping()
        self._runners: dict[str, SandboxedRunner] = {}
        self._lock = threading.Lock()
        self._closed = False
        # One budget for every worker's answers: they all land in this process.
        self.answers = AnswerBudget(
            int(limits.extra.get("sandbox.answer_budget_bytes", DEFAULT_ANSWER_BUDGET))
        )
        self._report = self._probe()
        if not self._report.confined and not unsafe_allow_unconfined:
            raise ServiceUnavailable(
                "the model sandbox cannot be enforced on this host: "
                + "; ".join(self._report.problems or ("confinement incomplete",)),
                remedy="run on Linux with seccomp enabled, or pass unsafe_allow_unconfined "
                "for development only",
            )

    def _probe(self) -> SandboxReport:
        canary = WorkerProcess(None, self.limits, network=self.network)
        try:
            canary.start(b"")
            found = canary.probe()
        finally:
            canary.stop()
        sandbox = canary.sandbox
        problems = [str(p) for p in sandbox.get("errors", [])]
        if "failed" in found:
            problems.append(str(found["failed"]))
        socket_denied = str(found.get("socket_inet", "")).startswith("denied") and str(
            found.get("socket_unix", "")
        ).startswith("denied")
        execve_denied = str(found.get("execve", "")).startswith("denied")
        write_denied = str(found.get("write_file", "")).startswith("denied")
        memory_denied = str(found.get("read_service_memory", "")).startswith("denied")
        signal_denied = str(found.get("signal_service", "")).startswith("denied")
        for name, ok in (
            ("socket", socket_denied),
            ("execve", execve_denied),
            ("writing a file", write_denied),
            ("reading the service's memory", memory_denied),
            ("signalling the service", signal_denied),
        ):
            if not ok:
                problems.append(f"{name} is not denied inside the worker")
        return SandboxReport(
            mechanism=mechanism_of(sandbox),
            network_namespace=sandbox.get("network_namespace"),
            seccomp=bool(sandbox.get("seccomp")),
            socket_denied=socket_denied,
            execve_denied=execve_denied,
            file_write_denied=write_denied,
            rlimits=dict(sandbox.get("rlimits") or {}),
            problems=tuple(problems),
            filesystem=sandbox.get("filesystem"),
            service_memory_denied=memory_denied,
            signal_denied=signal_denied,
        )

    def check_confinement(self, sandbox: Mapping[str, Any]) -> None:
        """Refuse a worker whose confinement is weaker than the probe's."""
        if self.unsafe_allow_unconfined:
            return
        if not sandbox.get("seccomp"):
            raise ServiceUnavailable("a sandboxed worker could not install its seccomp filter")
        if namespace_strength(sandbox.get("network_namespace")) < namespace_strength(
            self._report.network_namespace
        ):
            raise ServiceUnavailable("a sandboxed worker could not enter its namespaces")
        if self._report.filesystem and not sandbox.get("filesystem"):
            raise ServiceUnavailable("a sandboxed worker could not restrict its filesystem")

    def load(
        self,
        instance_id: str,
        fmt: ModelFormat,
        model: bytes | bytearray | memoryview,
        limits: RuntimeLimits,
        reload: ModelSource | None = None,
    ) -> SandboxedRunner:
        """Start the instance's workers with *model*; raises ModelRejected if refused.

        *model* is sent as it is, never copied. Without *reload* the runner keeps
        it to restart crashed workers, so it must not change afterwards; with
        *reload* the runner drops it once the workers have started, and a
        restart asks *reload* for the model again.

        Loading an instance that is already loaded raises Conflict: unload first.
        """
        loading = self.begin_load(instance_id, fmt, memoryview(model).nbytes, limits, reload)
        loading.write(model)
        return loading.finish(model)

    def begin_load(
        self,
        instance_id: str,
        fmt: ModelFormat,
        size: int,
        limits: RuntimeLimits,
        reload: ModelSource | None = None,
    ) -> ModelLoad:
        """Start the instance's workers for a model of *size* bytes still arriving.

        Feed it with :meth:`ModelLoad.write`, then :meth:`ModelLoad.finish`
        (or :meth:`ModelLoad.abort`); see :meth:`load` for *reload*.
        """
        return ModelLoad(self, instance_id, fmt, size, limits, reload)

    def new_worker(self, fmt: ModelFormat, limits: RuntimeLimits) -> WorkerProcess:
        return WorkerProcess(
            fmt, limits, network=self.network, require=self.required(), answers=self.answers
        )

    def required(self) -> tuple[str, ...]:
        """The confinement a worker must have before it parses a model.

        What :meth:`check_confinement` checks afterwards, told to the worker so a
        worker without it refuses the model unparsed: seccomp always, the network
        namespace (inside a user namespace where the probe had one) and the
        filesystem restriction where the probe found them;
        nothing under ``unsafe_allow_unconfined``.
        """
        if self.unsafe_allow_unconfined:
            return ()
        required = ["seccomp"]
        if self._report.network_namespace:
            required.append("network_namespace")
        if has_confinement({"network_namespace": self._report.network_namespace}, USER_NAMESPACE):
            required.append(USER_NAMESPACE)
        if self._report.filesystem:
            required.append("filesystem")
        return tuple(required)

    def check_free(self, instance_id: str) -> None:
        """Raise unless *instance_id* could be loaded now."""
        if self._closed:
            raise ServiceUnavailable("the supervisor is closed")
        with self._lock:
            if instance_id in self._runners:
                raise Conflict(f"instance {instance_id!r} already has a model loaded")

    def register(self, instance_id: str, runner: SandboxedRunner) -> None:
        with self._lock:
            if self._closed or instance_id in self._runners:
                runner.close()
                if self._closed:
                    raise ServiceUnavailable("the supervisor is closed")
                raise Conflict(f"instance {instance_id!r} already has a model loaded")
            self._runners[instance_id] = runner

    def runner(self, instance_id: str) -> SandboxedRunner:
        with self._lock:
            runner = self._runners.get(instance_id)
        if runner is None:
            raise NotFound(f"instance {instance_id!r} has no model loaded")
        return runner

    def unload(self, instance_id: str) -> None:
        with self._lock:
            runner = self._runners.pop(instance_id, None)
        if runner is not None:
            runner.close()

    def unload_runner(self, instance_id: str, runner: SandboxedRunner) -> None:
        """Unload *runner* if it is still the one loaded for *instance_id*; close it anyway."""
        with self._lock:
            if self._runners.get(instance_id) is runner:
                del self._runners[instance_id]
        runner.close()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            runners = list(self._runners.values())
            self._runners.clear()
        for runner in runners:
            runner.close()

    def report(self) -> SandboxReport:
        with self._lock:
            runners = list(self._runners.values())
        base = self._report
        return SandboxReport(
            mechanism=base.mechanism,
            network_namespace=base.network_namespace,
            seccomp=base.seccomp,
            socket_denied=base.socket_denied,
            execve_denied=base.execve_denied,
            file_write_denied=base.file_write_denied,
            rlimits=base.rlimits,
            instances=len(runners),
            workers=sum(len(r.worker_pids) for r in runners),
            restarts=sum(r.restarts for r in runners),
            problems=base.problems,
            filesystem=base.filesystem,
            service_memory_denied=base.service_memory_denied,
            signal_denied=base.signal_denied,
        )


if TYPE_CHECKING:

    def _is_a_model_runner(runner: SandboxedRunner) -> ModelRunner:
        return runner  # mypy checks that SandboxedRunner meets the contract
