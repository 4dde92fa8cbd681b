"""The control service on a real log and Postgres: a change is published once validated, its
history includes changes published by others (the loop), and the projection converges on the
log however often a record is applied."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from hartonomous.v1 import control_pb2 as pb
from hartonomous.v1 import control_pb2_grpc
from services.control.service import ControlService
from tests.support.harness import running, set_tunable

KEY = "inference.batch.max_wait_ms"


async def test_changes_from_the_api_and_from_the_log_make_one_history(pg_url: str) -> None:
    async with running(ControlService(), pg_url=pg_url) as h:
        stub = control_pb2_grpc.ControlStub(h.channel)
        request = pb.SetConfigRequest(key=KEY, value="20", reason="slow clients", actor="user:k1")
        changed = await stub.SetConfig(request)
        assert (changed.value, changed.source) == ("20", "operator")
        await set_tunable(h.event_log, KEY, "7")  # another process's change, on the log only

        async def history() -> list[pb.ConfigChange]:
            reply = await stub.ConfigHistory(pb.ConfigHistoryRequest(key=KEY))
            return list(reply.changes)

        for _ in range(100):
            if len(await history()) == 2:
                break
            await asyncio.sleep(0.1)
        latest, first = await history()
        assert (first.old_value, first.new_value) == ("5", "20")
        assert (latest.new_value, latest.actor) == ("7", "user:tests")
        [setting] = (await stub.GetConfig(pb.GetConfigRequest(key=KEY))).settings
        assert setting.value == "7"

        [runner] = h.consumers  # a record applied again changes nothing
        records = [r async for r in h.event_log.replay("control", from_offset=0)]
        await runner.apply(records)
        assert len(await history()) == 2


async def test_a_refused_change_never_reaches_the_log(pg_url: str) -> None:
    async with running(ControlService(), pg_url=pg_url) as h:
        stub = control_pb2_grpc.ControlStub(h.channel)
        for key, value, code in (
            ("no.such.knob", "1", grpc.StatusCode.NOT_FOUND),
            (KEY, "-1", grpc.StatusCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                request = pb.SetConfigRequest(key=key, value=value, reason="r", actor="user:k")
                await stub.SetConfig(request)
            assert refused.value.code() == code
        assert sum((await h.event_log.end_offsets("control")).values()) == 0
