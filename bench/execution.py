"""End-to-end execution latency and throughput, against the bare docker SDK baseline.

The baseline is the least any service can do for one execution: create, start, wait for, read
the logs of and remove one container running the same program with the same lock-down.
Both are measured in the same run, interleaved, because these machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from coderunner.languages import languages
from coderunner.settings import Settings
from coderunner.streams.client import ExecutionClient, new_submission
from tests.integration.workers import WorkerProcess, isolated_settings

HELLO = "print('hello')"


def baseline_once(api: docker.APIClient, image: str) -> float:
    """One bare execution through the low-level API (no extra inspect calls); seconds."""
    started = time.perf_counter()
    host_config = api.create_host_config(
        network_mode="none",
        read_only=True,
        tmpfs={"/work": "rw,exec,size=64m,uid=65534,gid=65534"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit="256m",
        memswap_limit="256m",
        pids_limit=64,
        nano_cpus=1_000_000_000,
    )
    container = api.create_container(
        image,
        ["python3", "-c", HELLO],
        working_dir="/work",
        user="65534:65534",
        network_disabled=True,
        host_config=host_config,
    )["Id"]
    try:
        api.start(container)
        api.wait(container)
        output = api.logs(container)
    finally:
        api.remove_container(container, force=True)
    assert output == b"hello\n", output
    return time.perf_counter() - started


async def service_once(client: ExecutionClient) -> float:
    started = time.perf_counter()
    submission = new_submission("python", HELLO)
    await client.submit(submission)
    done = await client.wait(submission.execution_id)
    assert done.verdict == "ACCEPTED", done
    return time.perf_counter() - started


async def service_parallel(
    client: ExecutionClient, total: int, in_flight: int
) -> tuple[list[float], float]:
    """`total` executions with at most `in_flight` outstanding; latencies and wall time."""
    gate = asyncio.Semaphore(in_flight)

    async def one() -> float:
        async with gate:
            return await service_once(client)

    started = time.perf_counter()
    latencies = await asyncio.gather(*(one() for _ in range(total)))
    return list(latencies), time.perf_counter() - started


def baseline_parallel(image: str, total: int, in_flight: int) -> tuple[list[float], float]:
    clients = [docker.from_env().api for _ in range(in_flight)]
    started = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        latencies = list(
            pool.map(lambda i: baseline_once(clients[i % in_flight], image), range(total))
        )
    elapsed = time.perf_counter() - started
    for c in clients:
        c.close()
    return latencies, elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def service_backlog(client: ExecutionClient, total: int) -> float:
    """Publish `total` submissions at once and time until every one has its verdict."""
    started = time.perf_counter()
    submissions = [new_submission("python", HELLO) for _ in range(total)]
    for submission in submissions:
        await client.submit(submission)
    await asyncio.gather(*(client.wait(s.execution_id) for s in submissions))
    return time.perf_counter() - started


async def main(runs: int, total: int, in_flight: int, workers: int, rounds: int) -> None:
    # The worker runs executions only: the projection is its own role (`coderunner projector`)
    # with its own benchmark (bench/projection.py), and on 2 cores it would compete with the
    # Docker engine here.
    settings: Settings = isolated_settings(sandbox_max_in_flight=workers, projection_enabled=False)
    image = languages()["python"].image(settings.sandbox_image_set)
    docker_client = docker.from_env().api
    log = Path(tempfile.mkdtemp()) / "bench-worker.log"
    worker = WorkerProcess(settings, log).start()
    try:
        async with ExecutionClient(settings) as client:
            for _ in range(3):  # warm-up: images in page cache, connections open
                baseline_once(docker_client, image)
                await service_once(client)
            base_seq, svc_seq = [], []
            for _ in range(runs):  # interleaved, so drift hits both alike
                base_seq.append(baseline_once(docker_client, image))
                svc_seq.append(await service_once(client))
            base_par, _ = baseline_parallel(image, total, in_flight)
            svc_par, _ = await service_parallel(client, total, in_flight)
            base_rates, svc_rates = [], []
            for _ in range(rounds):  # alternating rounds: a noisy minute hits both
                _, base_wall = baseline_parallel(image, total, workers)
                base_rates.append(total / base_wall)
                svc_rates.append(total / await service_backlog(client, total))
    finally:
        worker.stop()
        docker_client.close()
    rows = [
        ("sequential p50 (ms)", pct(base_seq, 0.5), pct(svc_seq, 0.5)),
        ("sequential p95 (ms)", pct(base_seq, 0.95), pct(svc_seq, 0.95)),
        (f"{in_flight} in flight p50 (ms)", pct(base_par, 0.5), pct(svc_par, 0.5)),
        (f"{in_flight} in flight p95 (ms)", pct(base_par, 0.95), pct(svc_par, 0.95)),
        (
            f"throughput, {workers} at once (exec/s)",
            statistics.median(base_rates),
            statistics.median(svc_rates),
        ),
    ]
    print(
        f"\npython hello world: {runs} sequential runs each (interleaved); {total} runs at "
        f"{in_flight} in flight; throughput: median of {rounds} alternating rounds, each a backlog"
        f" of {total} with {workers} running at once"
        " (worker SANDBOX_MAX_IN_FLIGHT, baseline threads)"
    )
    print(f"{'':34}{'bare docker SDK':>16}{'coderunner':>12}{'ratio':>8}")
    for name, base, svc in rows:
        print(f"{name:34}{base:16.1f}{svc:12.1f}{svc / base:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--total", type=int, default=80, help="runs per parallel measurement")
    parser.add_argument("--in-flight", type=int, default=4, help="for the latency figures")
    parser.add_argument("--workers", type=int, default=8, help="running at once, for throughput")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds of each")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.total, args.in_flight, args.workers, args.rounds))
