"""Use cases: key lifecycle, tenants, service accounts and verify.

Services own the transaction boundary (one unit of work per use case) and talk to storage only
through the Protocols in ``ports``. They may import ``keyrack.domain`` and ``keyrack.errors``,
never a framework, driver or adapter.
"""
