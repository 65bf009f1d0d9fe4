"""``results/`` holds results, not run state: no resume folders, and a size budget of 150 MB (the
checkpoints a committed result needs; a clone of the project must stay cheap)."""

from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
BUDGET_MB = 150


def test_no_resume_state_is_committed():
    assert not [p for p in RESULTS.rglob("resume") if p.is_dir()]
    assert not list(RESULTS.rglob("optimizer.pt"))


def test_results_fit_the_size_budget():
    total = sum(p.stat().st_size for p in RESULTS.rglob("*") if p.is_file())
    assert total <= BUDGET_MB * 2**20, f"results/ is {total / 2**20:.0f} MB, budget {BUDGET_MB} MB"
