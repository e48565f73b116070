"""Return-to-refund activities. Each is one idempotent adapter call; business faults become non-retryable
`ApplicationError`s typed by the fault (see activities.orders.business_errors), so the workflow parks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio import activity

from activities.orders import business_errors
from adapters.ports import Adapters
from canonical.money import Money
from canonical.returns import (
    AuthorizedLine,
    AuthorizedReturn,
    CreditNote,
    DispositionLine,
    Refund,
    ReturnRequest,
)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AuthorizeReturnInput(_In):
    workflow_id: str
    request: ReturnRequest
    return_window_days: int


class ReturnKeyInput(_In):
    key: str


class ExpectReturnInput(_In):
    external_ref: str
    lines: list[AuthorizedLine]


class CreditNoteInput(_In):
    note: CreditNote


class RefundInput(_In):
    refund: Refund


class TaxRefundInput(_In):
    code: str
    original_code: str
    amount: Money


class RestockInput(_In):
    receipt_key: str
    lines: list[DispositionLine]


class NotReceivedInput(_In):
    channel: str
    external_order_id: str
    return_id: str


class ReturnActivities:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    @activity.defn(name="authorize_return")
    @business_errors
    def authorize_return(self, inp: AuthorizeReturnInput) -> AuthorizedReturn:
        return self.adapters.erp.authorize_return(inp.request, workflow_id=inp.workflow_id,
                                                  return_window_days=inp.return_window_days)

    @activity.defn(name="expect_return")
    @business_errors
    def expect_return(self, inp: ExpectReturnInput) -> str:
        return self.adapters.wms.expect_return(inp.external_ref, inp.lines)

    @activity.defn(name="cancel_expected_return")
    @business_errors
    def cancel_expected_return(self, inp: ReturnKeyInput) -> bool:
        return self.adapters.wms.cancel_expected_return(inp.key)

    @activity.defn(name="create_credit_note")
    @business_errors
    def create_credit_note(self, inp: CreditNoteInput) -> CreditNote:
        return self.adapters.erp.create_credit_note(inp.note)

    @activity.defn(name="cancel_credit_note")
    @business_errors
    def cancel_credit_note(self, inp: ReturnKeyInput) -> bool:
        return self.adapters.erp.cancel_credit_note(inp.key)

    @activity.defn(name="refund_through_channel")
    @business_errors
    def refund_through_channel(self, inp: RefundInput) -> None:
        self.adapters.marketplace.refund(inp.refund)

    @activity.defn(name="refund_tax")
    @business_errors
    def refund_tax(self, inp: TaxRefundInput) -> None:
        self.adapters.tax.refund_tax(inp.code, inp.original_code, inp.amount)

    @activity.defn(name="void_tax_refund")
    @business_errors
    def void_tax_refund(self, inp: ReturnKeyInput) -> bool:
        return self.adapters.tax.void_tax_refund(inp.key)

    @activity.defn(name="restock_returned")
    @business_errors
    def restock_returned(self, inp: RestockInput) -> int:
        return self.adapters.erp.restock(inp.receipt_key, inp.lines)

    @activity.defn(name="notify_return_not_received")
    @business_errors
    def notify_return_not_received(self, inp: NotReceivedInput) -> None:
        self.adapters.marketplace.notify_return_not_received(inp.channel, inp.external_order_id, inp.return_id)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.authorize_return, self.expect_return, self.cancel_expected_return, self.create_credit_note,
            self.cancel_credit_note, self.refund_through_channel, self.refund_tax, self.void_tax_refund,
            self.restock_returned, self.notify_return_not_received,
        ]
