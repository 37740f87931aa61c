"""A no-op Open Inference Protocol server: the floor under every latency the load generator measures.

It answers `ModelInfer` at once with fixed response bytes (a real server's response, so the same
shape travels back), after parsing the request as a real server would. What a client measures
against it is the client's own cost plus the loopback transport: the generator's overhead.

    python -m milestone_lib.loadgen.echo [--response FILE] [--delay-ms 0] [--refuse] [--port 0]   # prints READY 127.0.0.1:PORT

With `--delay-ms D` it works D ms per request first (busy, like a model): a server of known service
time, against which a faithful client measures D plus the floor. With `--refuse` it answers every
request RESOURCE_EXHAUSTED after parsing it: the least a gRPC server in Python spends on a refusal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

import grpc

from ..errors import LoadGenError
from ..net import LOOPBACK, parse_ready_line
from ..serving.protocol import grpc_channel_options, service_pb2
from ..serving.service import run_service, serve_until_signal, service_parser

__all__ = ["EchoServer", "main", "serve_echo"]

_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


async def serve_echo(response: bytes, *, host: str = LOOPBACK, port: int = 0, grace: float = 1.0,
                     delay_ms: float = 0.0, refuse: bool = False) -> None:
    """Answer every ModelInfer with `response` (or RESOURCE_EXHAUSTED if `refuse`) until SIGTERM/SIGINT,
    after `delay_ms` of busy work each."""
    server = grpc.aio.server(options=grpc_channel_options())
    delay_s = delay_ms / 1e3

    async def infer(request: Any, context: grpc.aio.ServicerContext) -> bytes:
        if delay_s:
            # Busy, not asleep: a timer would wake up to a millisecond late, and a model is busy too.
            end = time.perf_counter() + delay_s
            while time.perf_counter() < end:
                pass
        if refuse:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "echo server refuses every request")
        return response

    handler = grpc.unary_unary_rpc_method_handler(infer, request_deserializer=service_pb2.ModelInferRequest.FromString)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelInfer": handler})])

    async def start(bind_host: str, bind_port: int) -> int:
        bound = server.add_insecure_port(f"{bind_host}:{bind_port}")
        await server.start()
        return bound

    await serve_until_signal(start, server.stop, host=host, port=port, grace=grace)


class EchoServer:
    """The echo server in its own process (so it does not share the client's interpreter), as a context manager."""

    def __init__(self, response: bytes = b"", *, delay_ms: float = 0.0, refuse: bool = False,
                 startup_timeout_s: float = 30.0) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="loadgen-echo-")
        folder = Path(self._folder.name)
        (folder / "response.bin").write_bytes(response)
        self._log = open(folder / "echo.log", "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(_PACKAGE_PARENT), os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "milestone_lib.loadgen.echo", "--response", str(folder / "response.bin"),
             "--delay-ms", str(delay_ms), *(["--refuse"] if refuse else [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, env=env)
        try:
            self.address = self._wait_ready(startup_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> str:
        found: list[tuple[str, int]] = []

        def read() -> None:
            for raw in self.proc.stdout:  # type: ignore[union-attr]
                parsed = parse_ready_line(raw.decode(errors="replace"))
                if parsed:
                    found.append(parsed)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not found:
            self._log.flush()
            tail = Path(self._log.name).read_text(errors="replace")[-1500:]
            raise LoadGenError(f"the echo server did not print READY within {timeout_s:g} s (exit code "
                               f"{self.proc.poll()}); its log ends with:\n{tail}\nrun `python -m "
                               "milestone_lib.loadgen.echo` by hand to see why")
        host, port = found[0]
        return f"{host}:{port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        self._folder.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = service_parser("python -m milestone_lib.loadgen.echo", __doc__.split("\n")[0])
    parser.add_argument("--response", type=Path, help="serialized ModelInferResponse to answer with; "
                        "default: an empty response")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="busy time per request: a server of known "
                        "service time, to check that a client measures it plus its floor")
    parser.add_argument("--refuse", action="store_true", help="answer every request RESOURCE_EXHAUSTED: "
                        "the floor under a server's cost of refusing")
    args = parser.parse_args(argv)
    if args.response and not args.response.is_file():
        parser.error(f"--response {args.response}: no such file; write a serialized ModelInferResponse there "
                     "or leave the flag out for an empty response")
    response = args.response.read_bytes() if args.response else b""
    return run_service(serve_echo(response, host=args.host, port=args.port, grace=args.grace_s,
                                  delay_ms=args.delay_ms, refuse=args.refuse))


if __name__ == "__main__":
    sys.exit(main())
