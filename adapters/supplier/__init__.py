"""Drop-ship suppliers: the SupplierAdapter port (base.py) and its EDI implementation over a managed-file drop
folder (edi.py: X12 in x12.py, the transport in dropfolder.py, control numbers and acknowledgements in ledger.py)."""
