"""Re-record the replay histories with the payload codec: `python -m tests.replay.seal [names...]`.

The recorded histories pin the command sequences the workflows had when they were recorded (see test_replay.py),
so they are not recorded again from today's code: each payload the SDK would have sent through the codec
(inputs, results, signals, updates, memos, summaries, failure details, local activity results) is sealed with
runtime/codec.py exactly as a worker with the codec would have, under the replay key in `codec-keys.json` beside
this file (a test key: it seals nothing but these fixtures). What core itself writes stays as it is, as in a live
history: search attributes and headers (never codec payloads), and marker details other than a local
activity's `result` (core's own marker data and patch ids). `order_completed_precodec.json` stays in clear: the
codec must keep replaying histories from before it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory

from adapters.crypto import Keyring
from runtime.codec import ENCODING, EncryptionCodec

HERE = Path(__file__).parent
HISTORIES = HERE / "histories"
KEY_FILE = HERE / "codec-keys.json"
PRECODEC = {"order_completed_precodec"}
SKIP_TYPES = {"temporal.api.common.v1.SearchAttributes", "temporal.api.common.v1.Header"}
MARKER = "temporal.api.history.v1.MarkerRecordedEventAttributes"


def replay_keyring() -> Keyring:
    return Keyring.from_file(KEY_FILE)


def visit_payloads(msg: Message, fn) -> None:
    """Call `fn(payload)` on every Payload the SDK's codec handles in a history message (in place)."""
    for field, value in msg.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        type_name = field.message_type.full_name
        if type_name in SKIP_TYPES:
            continue
        if msg.DESCRIPTOR.full_name == MARKER and field.name == "details":
            if "result" in value:
                _each(value["result"], fn)
            continue
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value.values():
                    _each(item, fn)
            continue
        if field.is_repeated:
            for item in value:
                _each(item, fn)
        else:
            _each(value, fn)


def _each(item: Message, fn) -> None:
    if item.DESCRIPTOR.full_name == "temporal.api.common.v1.Payload":
        fn(item)
    else:
        visit_payloads(item, fn)


def seal_history(text: str, codec: EncryptionCodec, workflow_id: str = "replay") -> str:
    history = WorkflowHistory.from_json(workflow_id, text)

    def seal(payload: Payload) -> None:
        if payload.metadata.get("encoding") != ENCODING:
            payload.CopyFrom(codec.encode_one(payload))

    for event in history.events:
        visit_payloads(event, seal)
    return history.to_json() + "\n"


def payloads_of(text: str) -> list[Payload]:
    found: list[Payload] = []
    for event in WorkflowHistory.from_json("scan", text).events:
        visit_payloads(event, found.append)
    return found


async def main(names: list[str]) -> None:
    codec = EncryptionCodec(replay_keyring())
    for path in sorted(HISTORIES.glob("*.json")):
        if path.stem in PRECODEC or (names and path.stem not in names):
            continue
        path.write_text(seal_history(path.read_text(), codec, path.stem))
        print(f"sealed {path.name}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
