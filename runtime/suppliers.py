"""Composition of the drop-ship supplier adapters (issue 20; docs/fulfillment.md, "Supplier settings"): the EDI
adapter that serves `supplier:edi` nodes, over the suppliers' SFTP server or the embedded stack's local drop folder,
from the RETAILFLOW_SUPPLIER_* settings (runtime/settings.py OrderSettings)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from adapters.supplier.base import SupplierAdapter
from runtime.settings import Settings


def supplier_drop_folder(settings: Settings) -> Path:
    """The embedded stack's EDI drop folder (RETAILFLOW_SUPPLIER_DROP_FOLDER, default <data_dir>/edi)."""
    return Path(settings.supplier_drop_folder or Path(settings.data_dir) / "edi")


def build_suppliers(settings: Settings, engine: Engine) -> dict[str, SupplierAdapter]:
    """The supplier adapters by name (`supplier:<name>` nodes): `edi`, the X12/EDIFACT adapter over the suppliers'
    SFTP server (RETAILFLOW_SUPPLIER_SFTP_HOST) or else the local drop folder, its control numbers and
    acknowledgements on the platform database (docs/fulfillment.md, "Supplier settings")."""
    from adapters.supplier.dropfolder import LocalDropFolder, ManagedFileTransport
    from adapters.supplier.edi import EdiSupplierAdapter
    from adapters.supplier.ledger import SqlEdiLedger

    transport: ManagedFileTransport
    if settings.supplier_sftp_host:
        from adapters.supplier.sftp import SftpDropFolder, SftpSettings

        secret = settings.supplier_sftp_password
        key = settings.supplier_sftp_private_key_pem
        transport = SftpDropFolder(SftpSettings(
            host=settings.supplier_sftp_host, username=settings.supplier_sftp_username,
            known_host_key=settings.supplier_sftp_known_host_key, port=settings.supplier_sftp_port,
            password=secret.get_secret_value() if secret else None,
            private_key_pem=key.get_secret_value() if key else None, base_dir=settings.supplier_sftp_base_dir))
    else:
        transport = LocalDropFolder(supplier_drop_folder(settings))
    edi = EdiSupplierAdapter(transport, SqlEdiLedger(engine), our_id=settings.supplier_edi_id,
                             our_qualifier=settings.supplier_edi_qualifier,
                             partner_qualifiers=dict(settings.supplier_partner_qualifiers),
                             usage=settings.supplier_edi_usage,
                             edifact_partners=frozenset(settings.supplier_edifact_partners))
    return {"edi": edi}
