"""The pure limit step; the backend contract and differential suites cover the rest."""

from keyrack.domain.limits import (
    NEVER,
    BudgetCharge,
    BudgetState,
    LimitRequest,
    LimitStates,
    apply,
)
from keyrack.domain.outcome import Outcome


def _states(budgets: dict[str, BudgetState]) -> LimitStates:
    return LimitStates({}, {}, budgets, {})


class TestBudget:
    def test_a_zero_spend_writes_a_seeded_budget_and_passes_even_when_overdrawn(self):
        charge = BudgetCharge("k:key_a", 10, 8, NEVER, 12, 0, 0)
        answer = apply(_states({}), LimitRequest("ten_a", budget=charge), now_ms=1)
        assert (Outcome.VALID, BudgetState(12, 0)) == (answer.outcome, answer.new_budget)

    def test_a_zero_spend_on_a_stored_budget_writes_nothing(self):
        charge = BudgetCharge("k:key_a", 10, 8, NEVER, 0, 0, 0)
        states = _states({"k:key_a": BudgetState(3, 0)})
        answer = apply(states, LimitRequest("ten_a", budget=charge), now_ms=1)
        assert (Outcome.VALID, None, BudgetState(3, 0)) == (
            answer.outcome,
            answer.new_budget,
            answer.budget,
        )
