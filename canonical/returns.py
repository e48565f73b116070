"""Returns and refunds as the platform sees them: the request, what the warehouse received, what becomes of
each unit, the money going back to the customer and the ERP credit note that books it."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import Field, model_validator

from canonical.fulfillment import StepRecord
from canonical.money import Money, sum_money
from canonical.order import CanonicalModel, UtcDatetime


class ReturnReason(StrEnum):
    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    NOT_AS_DESCRIBED = "not_as_described"
    NO_LONGER_NEEDED = "no_longer_needed"
    ORDER_CANCELLED = "order_cancelled"
    OTHER = "other"


class RefundPolicy(StrEnum):
    ON_RECEIPT = "refund_on_receipt"
    BEFORE_RECEIPT = "refund_before_receipt"


class ReturnLine(CanonicalModel):
    line_id: str = Field(description="The original order line's channel id")
    quantity: int = Field(ge=0, description="Units returned or refunded; 0 for a price adjustment on the line")
    reason: ReturnReason = ReturnReason.OTHER
    note: str | None = None
    amount: Money | None = Field(default=None, description="Net amount the channel refunded for the line, when it "
                                 "is not simply the units' share (a partial price adjustment); capped at what is "
                                 "left to credit on the line")
    tax: Money | None = Field(default=None, description="Tax refunded with `amount`")

    @model_validator(mode="after")
    def _amount_or_units(self) -> ReturnLine:
        if self.tax is not None and self.amount is None:
            raise ValueError(f"line {self.line_id}: tax is given without an amount")
        if self.amount is not None and self.amount.amount < 0 or self.tax is not None and self.tax.amount < 0:
            raise ValueError(f"line {self.line_id}: refunded amounts must not be negative")
        return self


class ReturnRequest(CanonicalModel):
    channel: str
    return_id: str
    external_order_id: str = Field(description="The original order's channel id")
    requested_at: UtcDatetime
    lines: list[ReturnLine] = Field(min_length=1)
    adjustment: Money | None = Field(default=None, description="A lump sum refunded with no units (goodwill), tax "
                                     "included: spread over the lines in proportion to what is left on them")

    @property
    def order_workflow_id(self) -> str:
        return f"order:{self.channel}:{self.external_order_id}"

    @property
    def workflow_id(self) -> str:
        return f"return:{self.channel}:{self.return_id}"

    @model_validator(mode="after")
    def _unique_lines(self) -> ReturnRequest:
        ids = [line.line_id for line in self.lines]
        if len(ids) != len(set(ids)):
            raise ValueError("each order line may appear once in a return request")
        for line in self.lines:
            if line.quantity == 0 and line.amount is None and self.adjustment is None:
                raise ValueError(f"line {line.line_id}: no units and no amount: nothing to refund")
        if self.adjustment is not None and self.adjustment.amount <= 0:
            raise ValueError("an adjustment must be a positive amount")
        return self


class Condition(StrEnum):
    RESELLABLE = "resellable"
    DAMAGED = "damaged"
    DEFECTIVE = "defective"


class Disposition(StrEnum):
    RESTOCK = "restock"
    REFURBISH = "refurbish"
    SCRAP = "scrap"


DISPOSITION_BY_CONDITION = {
    Condition.RESELLABLE: Disposition.RESTOCK,
    Condition.DAMAGED: Disposition.REFURBISH,
    Condition.DEFECTIVE: Disposition.SCRAP,
}


class ReceiptLine(CanonicalModel):
    line_id: str
    quantity: int = Field(gt=0)
    condition: Condition = Condition.RESELLABLE


class Receipt(CanonicalModel):
    """What the warehouse actually received in one delivery of a return (partial receipts add up)."""

    receipt_id: str
    return_id: str
    received_at: UtcDatetime
    lines: list[ReceiptLine] = Field(min_length=1)


class DispositionLine(CanonicalModel):
    line_id: str
    item_code: str
    quantity: int = Field(gt=0)
    disposition: Disposition


class AuthorizedLine(CanonicalModel):
    """One returnable line, priced from the ERP sales order: per-unit net and tax as they were charged."""

    line_id: str
    item_code: str
    quantity: int = Field(ge=0, description="Units authorized for return (0: an amount only)")
    ordered_quantity: int = Field(gt=0)
    line_net: Money = Field(description="What the whole order line was charged, net of discounts")
    line_tax: Money
    credited_net: Money | None = Field(default=None, description="Net already credited on the line by earlier notes")
    credited_tax: Money | None = None
    credited_quantity: int | None = Field(default=None, ge=0, description="Units already credited on the line by "
                                          "earlier notes (None: the ERP did not say; see `share`)")

    @property
    def remaining_net(self) -> Money:
        return self.line_net - (self.credited_net or Money.zero(self.line_net.currency))

    @property
    def remaining_tax(self) -> Money:
        return self.line_tax - (self.credited_tax or Money.zero(self.line_tax.currency))

    def share(self, quantity: int) -> tuple[Money, Money]:
        """Net and tax for `quantity` units: the units' share of what is left to credit on the line, so that
        crediting every unit, in any number of returns, gives back exactly what was paid.

        The gross (net + tax) and the tax are each the units' proportional share of what is left, rounded
        half-even to the currency's minor unit, and the net is their difference: one of two identical units is
        half the gross (19.95 of 39.90), whatever the net/tax split. The units that are the last ones left on
        the line take the whole remainder (earlier credit notes included). Never more than is left, never
        negative. Without `credited_quantity` (an ERP that does not report it) the share is of the whole line
        and all of its units, and only a return of every unit is known to be the last."""
        cur = self.line_net.currency
        zero = Money.zero(cur)
        rem_net, rem_tax = max(self.remaining_net, zero), max(self.remaining_tax, zero)
        left = self.ordered_quantity - self.credited_quantity if self.credited_quantity is not None else None
        if quantity <= 0:
            return zero, zero
        if left is not None and quantity >= left or left is None and quantity >= self.ordered_quantity:
            return rem_net, rem_tax  # the last units on the line: what is left of what was paid
        if left is not None:
            base_gross, base_tax, units = rem_net + rem_tax, rem_tax, left
        else:
            base_gross, base_tax, units = self.line_net + self.line_tax, self.line_tax, self.ordered_quantity
        gross = _share(base_gross, quantity, units)
        tax = _share(base_tax, quantity, units)
        gross, tax = min(gross, rem_net + rem_tax), min(tax, rem_tax)
        net = gross - tax
        if net > rem_net:  # keep the gross; tiny remainders can tip the split
            net, tax = rem_net, gross - rem_net
        elif net < zero:
            net, tax = zero, gross
        return net, tax


def _share(total: Money, quantity: int, of: int) -> Money:
    """`quantity`/`of` of `total`, rounded half-even to the currency's minor unit (Money rounds so)."""
    return Money.of(total.amount * Decimal(quantity) / Decimal(of), total.currency)


class AuthorizedReturn(CanonicalModel):
    order_external_ref: str
    erp_sales_order_id: str
    currency: str
    lines: list[AuthorizedLine]


def allocate_refund(auth: AuthorizedReturn, request: ReturnRequest,
                quantities: dict[str, int]) -> tuple[dict[str, tuple[Money, Money]], Money]:
    """ReturnToRefund's credit amounts, a pure rule. Net and tax to credit per line: the units' share of what was
    charged, or the amount the channel refunded for the line, plus any lump-sum adjustment spread over the lines
    — never more than is left to credit on a line (earlier credit notes included), so refunds never exceed what
    was paid. Also returns what the channel said it refunded beyond those caps (explicit line amounts and the
    lump sum)."""
    cur = auth.currency
    zero = Money.zero(cur)
    asked = {line.line_id: line for line in request.lines}
    out: dict[str, tuple[Money, Money]] = {}
    uncredited = zero
    for line in auth.lines:
        if line.line_id not in quantities:
            continue
        req = asked.get(line.line_id)
        if req is not None and req.amount is not None:
            net, tax = req.amount, req.tax or zero
        else:
            net, tax = line.share(quantities[line.line_id])
        capped = (min(net, max(line.remaining_net, zero)), min(tax, max(line.remaining_tax, zero)))
        if req is not None and req.amount is not None:  # what the channel said it refunded, beyond the cap
            uncredited = uncredited + (net - capped[0]) + (tax - capped[1])
        out[line.line_id] = capped
    if request.adjustment is not None:
        uncredited = uncredited + request.adjustment
        lines = [line for line in auth.lines if line.line_id in out]
        room = [(line.remaining_net - out[line.line_id][0]) + (line.remaining_tax - out[line.line_id][1])
                for line in lines]
        parts = request.adjustment.allocate([max(r.amount, Decimal(0)) for r in room])
        for line, part, left in zip(lines, parts, room, strict=True):
            part = min(part, max(left, zero))
            uncredited = uncredited - part
            gross = line.line_net + line.line_tax
            tax_part = Money.of(part.amount * line.line_tax.amount / gross.amount, cur) if not gross.is_zero else zero
            net, tax = out[line.line_id]
            out[line.line_id] = (net + part - tax_part, tax + tax_part)
    return out, uncredited


class RefundLine(CanonicalModel):
    line_id: str
    quantity: int = Field(ge=0)
    amount: Money = Field(description="Net amount refunded for the line")
    tax: Money


class Refund(CanonicalModel):
    """Money back to the customer. `fees_kept` (restocking fee, say) is withheld from the total."""

    refund_key: str = Field(description="Idempotency key: the same key never pays twice")
    channel: str
    external_order_id: str
    currency: str
    lines: list[RefundLine]
    shipping: Money
    tax: Money
    fees_kept: Money

    @property
    def total(self) -> Money:
        return sum_money([line.amount for line in self.lines], self.currency) + self.shipping + self.tax - self.fees_kept

    @model_validator(mode="after")
    def _consistent(self) -> Refund:
        line_tax = sum_money([line.tax for line in self.lines], self.currency)
        if line_tax != self.tax:
            raise ValueError(f"refund tax {self.tax} differs from the sum of its lines' tax {line_tax}")
        if self.total.amount < 0:
            raise ValueError("fees kept exceed the refund")
        return self


class CreditNoteLine(CanonicalModel):
    line_id: str
    item_code: str | None = None
    quantity: int = Field(ge=0)
    net: Money
    tax: Money


class CreditNote(CanonicalModel):
    """The ERP document reversing (part of) a sale. It balances: net + tax of the lines = total."""

    credit_note_id: str | None = None
    external_ref: str
    order_external_ref: str
    currency: str
    lines: list[CreditNoteLine] = Field(min_length=1)
    net_total: Money
    tax_total: Money
    total: Money

    @model_validator(mode="after")
    def _balances(self) -> CreditNote:
        net = sum_money([line.net for line in self.lines], self.currency)
        tax = sum_money([line.tax for line in self.lines], self.currency)
        if net != self.net_total or tax != self.tax_total or net + tax != self.total:
            raise ValueError(f"credit note does not balance: lines {net} + {tax}, header {self.net_total} + "
                             f"{self.tax_total} = {self.total}")
        if self.total.amount < 0:
            raise ValueError("a credit note total must not be negative")
        return self

    @classmethod
    def build(cls, external_ref: str, order_external_ref: str, currency: str,
              lines: list[CreditNoteLine]) -> CreditNote:
        net = sum_money([line.net for line in lines], currency)
        tax = sum_money([line.tax for line in lines], currency)
        return cls(external_ref=external_ref, order_external_ref=order_external_ref, currency=currency, lines=lines,
                   net_total=net, tax_total=tax, total=net + tax)


class ReturnStatus(StrEnum):
    REQUESTED = "requested"
    AUTHORIZED = "authorized"
    AWAITING_RECEIPT = "awaiting_receipt"
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    CREDITED = "credited"
    REFUNDED = "refunded"
    COMPLETED = "completed"
    NOT_RECEIVED = "not_received"
    NEEDS_ATTENTION = "needs_attention"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"


class ReturnToRefundInput(CanonicalModel):
    request: ReturnRequest
    policy: RefundPolicy = RefundPolicy.ON_RECEIPT
    return_window_days: int = Field(default=30, gt=0)
    receipt_timeout_days: int = Field(default=21, gt=0)
    restocking_fee_percent: int = Field(default=0, ge=0, le=100)
    goods_returned: bool = Field(default=True, description="False for a refund without a return (price "
                                 "adjustment, goodwill): no warehouse, no receipt, no restock")
    channel_already_refunded: bool = Field(default=False, description="The channel paid it (e.g. Shopify "
                                           "refunds/create): book and adjust tax, never pay again")
    step_max_attempts: int = Field(default=20, ge=1)
    activity_task_queues: dict[str, str] = Field(
        default_factory=dict, description="Activity name → task queue of a partner worker (RETAILFLOW_ACTIVITY_TASK_QUEUES)")


class ReturnView(CanonicalModel):
    workflow_id: str
    status: ReturnStatus
    reason: str | None = None
    policy: RefundPolicy
    erp_sales_order_id: str | None = None
    credit_note_id: str | None = None
    refund_total: Money | None = None
    received_quantities: dict[str, int] = Field(default_factory=dict)
    dispositions: list[DispositionLine] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)
    compensations: list[str] = Field(default_factory=list)


# -- business faults of returns (park the run for an analyst) -------------------------------------------
from canonical.errors import BusinessError  # noqa: E402


class ReturnNotAllowed(BusinessError):
    action = "Check the return against the order (shipped, already returned, return window); then `retry` or `cancel`."


class RefundInconsistent(BusinessError):
    action = "The refund does not match the order; check it in the channel, then `retry` or `cancel`."


RETURN_ERROR_TYPES: frozenset[str] = frozenset({"ReturnNotAllowed", "RefundInconsistent"})
