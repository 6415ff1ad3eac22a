"""The compliance report page: one self-contained HTML file of a period of the audit log."""
