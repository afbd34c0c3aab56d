"""Cache and limit-state backends implementing ``keyrack.services.ports``.

``memory`` is the embedded default and the reference implementation. Backends may import
``keyrack.domain``, ``keyrack.services.ports`` and ``keyrack.errors``.
"""
