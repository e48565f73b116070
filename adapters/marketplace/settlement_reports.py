"""Where settlement reports come from, and which parser reads them.

The embedded source reads report files dropped in `<data_dir>/settlements/<provider>/` (a marketplace adapter that
downloads reports from the provider's API writes them there too). A report id is the file's path relative to the
provider's folder; an absolute path is accepted for reports run by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from pydantic import Field

from adapters.marketplace import amazon_settlement, shopify_payouts
from canonical.finance import Settlement, SettlementFileInvalid
from canonical.order import CanonicalModel


class ReportRef(CanonicalModel):
    provider: str
    report_id: str
    settlement_id: str | None = None
    currency: str | None = None
    total: str | None = None
    error: str | None = Field(default=None, description="Why the report cannot be read (it is skipped)")


def parser_name(provider: str, head: bytes = b"") -> str:
    """`amazon` or `shopify`: by the provider's name (amazon, amazon-de, shopify-eu...), else by the content."""
    lowered = provider.lower()
    if lowered.startswith("amazon"):
        return "amazon"
    if lowered.startswith("shopify"):
        return "shopify"
    if amazon_settlement.sniff(head):
        return "amazon"
    if shopify_payouts.sniff(head):
        return "shopify"
    raise SettlementFileInvalid(f"no settlement parser for provider {provider!r}")


def open_reader(provider: str, fileobj: IO[bytes]):
    """A streaming reader: `.settlement` (the header) and iteration over canonical SettlementLines."""
    head = fileobj.peek(4096)[:4096] if hasattr(fileobj, "peek") else b""
    name = parser_name(provider, head)
    if name == "amazon":
        return amazon_settlement.read_settlement(fileobj, provider=provider)
    return shopify_payouts.read_payout(fileobj, provider=provider)


def peek_settlement(provider: str, path: Path) -> Settlement:
    """Read only the header of a report (cheap, whatever the file's size)."""
    with open(path, "rb") as f:
        return open_reader(provider, f).settlement


@runtime_checkable
class SettlementReportSource(Protocol):
    def list_reports(self, provider: str) -> list[ReportRef]:
        """The reports available for a provider, each with its settlement id (or the reason it is unreadable)."""

    def resolve(self, provider: str, source: str) -> Path:
        """The local file of a report id (or an absolute path); raise SettlementFileInvalid if missing."""


class LocalSettlementReports:
    SUFFIXES = (".tsv", ".txt", ".csv", ".json", ".tab")

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, provider: str) -> Path:
        if not provider or "/" in provider or "\\" in provider or provider.startswith("."):
            raise SettlementFileInvalid(f"invalid provider name {provider!r}")
        return self.root / provider

    def list_reports(self, provider: str) -> list[ReportRef]:
        folder = self.folder(provider)
        if not folder.is_dir():
            return []
        refs = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in self.SUFFIXES):
            report_id = path.relative_to(folder).as_posix()
            try:
                s = peek_settlement(provider, path)
            except (SettlementFileInvalid, OSError, ValueError) as exc:
                refs.append(ReportRef(provider=provider, report_id=report_id, error=str(exc)[:500]))
                continue
            refs.append(ReportRef(provider=provider, report_id=report_id, settlement_id=s.settlement_id,
                                  currency=s.currency, total=str(s.total)))
        return refs

    def resolve(self, provider: str, source: str) -> Path:
        candidate = Path(source)
        if not candidate.is_absolute():
            folder = self.folder(provider).resolve()
            candidate = (folder / source).resolve()
            if folder not in candidate.parents:
                raise SettlementFileInvalid(f"report id {source!r} leaves the {provider} report folder")
        if not candidate.is_file():
            raise SettlementFileInvalid(f"settlement report {source} not found")
        return candidate
