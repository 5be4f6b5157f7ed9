"""A TCP proxy on loopback that delays every chunk by a fixed one-way delay in each direction.

    python -m bench.delay_proxy --port 15432 --unix /tmp/x/.s.PGSQL.5432 --delay-ms 5

Each direction has a reader that timestamps what arrives and a writer that sends it once
`delay` has passed since arrival, so the link behaves like a wire with latency (RTT = 2 x delay)
rather than a slow one: chunks in flight do not wait for each other.
"""

import argparse
import asyncio
import contextlib
import signal
import time


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send()) if delay > 0 else None
    try:
        while True:
            data = await reader.read(65536)
            if sender is None:
                if not data:
                    break
                writer.write(data)
                await writer.drain()
                continue
            queue.put_nowait((time.monotonic() + delay, data))
            if not data:
                await sender
                break
    except (ConnectionError, OSError):
        pass
    finally:
        if sender is not None and not sender.done():
            sender.cancel()
        with contextlib.suppress(Exception):
            writer.close()


def make_handler(unix_path: str | None, target_host: str, target_port: int, delay: float):
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            if unix_path:
                server_reader, server_writer = await asyncio.open_unix_connection(unix_path)
            else:
                server_reader, server_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pump(client_reader, server_writer, delay),
            _pump(server_reader, client_writer, delay),
            return_exceptions=True,
        )

    return handle


async def serve(port: int, unix_path: str | None, target_host: str, target_port: int, delay_ms: float) -> None:
    handler = make_handler(unix_path, target_host, target_port, delay_ms / 1000)
    server = await asyncio.start_server(handler, "127.0.0.1", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="listen on 127.0.0.1:PORT")
    parser.add_argument("--unix", help="forward to this unix socket (PostgreSQL's .s.PGSQL.NNNN)")
    parser.add_argument("--target-host", default="127.0.0.1")
    parser.add_argument("--target-port", type=int, default=5432)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay in each direction")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.unix, args.target_host, args.target_port, args.delay_ms))


if __name__ == "__main__":
    main()
