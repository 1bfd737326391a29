"""Jobs through the SDK: upload, follow, read back once per custom_id
(sync and asyncio), a bad upload refused whole, cancel."""

import asyncio

import grpc
import pytest

from batchgate import AsyncClient, BatchgateError, Client, JobItem


def queues(tmp_path) -> str:
    return f"""
[queues.echo]
max_batch_size = 32
max_delay = "1ms"

[queues.slow]
max_batch_size = 2
max_delay = "1ms"
max_in_flight_batches = 1
handler = {{ kind = "sim", base = "20ms", per_item = "0us" }}

[jobs]
path = "{tmp_path / 'jobs.sqlite3'}"
"""


def test_a_job_runs_and_each_custom_id_gets_one_result(start_batchgate, tmp_path):
    server = start_batchgate(queues(tmp_path))
    with Client(server.addr) as client:
        items = [(f"doc-{i}", f"text {i}") for i in range(2500)]
        items.append({"custom_id": "with-attrs", "payload": b"\x00\x01", "attributes": {"k": "v"}})
        items.append(JobItem("typed", "t", cost=1))
        job = client.create_job("echo", items, labels={"run": "nightly"})
        assert job.info.total == 2502 and job.info.state == "queued"
        info = job.wait(timeout=60)
        assert info.state == "completed" and info.succeeded == 2502
        results = list(job.results())
        assert len(results) == 2502
        assert len({r.custom_id for r in results}) == 2502
        by_id = {r.custom_id: r for r in results}
        assert by_id["doc-7"].payload == b"text 7"
        assert by_id["with-attrs"].payload == b"\x00\x01"
        assert by_id["with-attrs"].attributes["k"] == "v"
        assert by_id["doc-7"].attributes["idempotency_key"] == f"{job.id}/doc-7"
        assert all(r.ok and r.batch_id > 0 for r in results)
        assert list(job.results(errors_only=True)) == []
        assert client.job(job.id).info.state == "completed"
        job.delete()
        with pytest.raises(BatchgateError) as e:
            client.job(job.id)
        assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_a_bad_upload_is_refused_whole_and_cancel_ends_the_rest(start_batchgate, tmp_path):
    server = start_batchgate(queues(tmp_path))
    with Client(server.addr) as client:
        with pytest.raises(BatchgateError) as e:
            client.create_job("echo", [("a", "x"), ("b", "x"), ("a", "y")])
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert 'item 2 (custom_id "a"): duplicate custom_id' in e.value.message
        with pytest.raises(BatchgateError) as e:
            client.create_job("nope", [("a", "x")])
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        # 100 items, 2 a batch at 20 ms: a second of work.
        job = client.create_job("slow", [(f"s{i}", "x") for i in range(100)])
        info = job.cancel()
        assert info.state in ("cancelling", "cancelled")
        info = job.wait(timeout=30)
        assert info.state == "cancelled"
        assert info.succeeded + info.cancelled == 100 and info.cancelled > 50
        errors = list(job.results(errors_only=True))
        assert len(errors) == info.cancelled
        assert all(r.error.code == grpc.StatusCode.CANCELLED for r in errors)


def test_the_asyncio_client_runs_jobs_too(start_batchgate, tmp_path):
    server = start_batchgate(queues(tmp_path))

    async def main():
        async with AsyncClient(server.addr) as client:
            job = await client.create_job("echo", [(f"a{i}", f"p{i}") for i in range(500)])
            info = await job.wait(timeout=60)
            assert info.state == "completed"
            seen = [r.custom_id async for r in job.results()]
            assert sorted(seen) == sorted(f"a{i}" for i in range(500))

    asyncio.run(main())
