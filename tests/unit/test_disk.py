"""Disk upkeep without Docker: durations and sizes, usage records, which images and cache
entries go (idle time, LRU budget), and the prune command's error line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelbus.images_command import images
from modelbus_worker.images.prune import CacheEntry, stale_entries, tree_size
from modelbus_worker.images.retention import (
    PRUNED_KINDS,
    ImageRemoval,
    Scope,
    Store,
    StoredImage,
    plan_budget,
    plan_prune,
)
from modelbus_worker.images.usage import MODEL_FILES, UsageRecords
from modelbus_worker.quantities import (
    format_duration,
    format_size,
    parse_budget,
    parse_duration,
    parse_size,
)
from modelbus_worker.settings import ContainerSettings

DAY = 86400.0
NOW = 100 * DAY
MB = 1_000_000


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "30s", "30m", "12h", "7d", "2w", "1.5h", " 7D ")] \
        == [90.0, 30.0, 1800.0, 43200.0, 604800.0, 1209600.0, 5400.0, 604800.0]
    for bad in ("", "7x", "d", "-1d", "7 days"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    assert [format_duration(s) for s in (45, 720, 18000, 9.2 * DAY)] \
        == ["45s", "12m", "5.0h", "9.2d"]


def test_sizes_and_budgets() -> None:
    assert [parse_size(t) for t in ("1024", "500k", "500m", "20g", "20GB", "20GiB", "1t")] == [
        1024, 512000, 524288000, 21474836480, 21474836480, 21474836480, 1099511627776]
    for bad in ("", "g", "20x", "-1g"):
        with pytest.raises(ValueError, match="not a size"):
            parse_size(bad)
    assert [parse_budget(t) for t in ("", "0", "none", "Unlimited", "1g")] \
        == [None, None, None, None, 1073741824]
    assert [format_size(n) for n in (12, 1536, 352 * 1024**2, int(1.56 * 1024**3))] \
        == ["12 B", "1.5 KB", "352.0 MB", "1.6 GB"]


def test_settings_read_durations_and_sizes() -> None:
    settings = ContainerSettings(image_max_idle="12h", image_budget="20g")
    assert (settings.image_max_idle, settings.image_budget) == (43200.0, 21474836480)
    assert ContainerSettings(image_budget="0").image_budget is None
    assert ContainerSettings().image_budget is None
    assert ContainerSettings().image_max_idle == 7 * DAY


def test_usage_records_round_trip(tmp_path: Path) -> None:
    usage = UsageRecords(tmp_path)
    assert usage.image_times() == {}
    usage.touch_image("modelbus/runtime:abc", at=5 * DAY)
    usage.touch_image("registry.local:5000/team/img:1", at=6 * DAY)
    usage.touch_entry(MODEL_FILES, "k1", at=7 * DAY)
    assert usage.image_times() == {"modelbus/runtime:abc": 5 * DAY,
                                   "registry.local:5000/team/img:1": 6 * DAY}
    assert (tmp_path / "usage" / "images" / "modelbus+runtime:abc").is_file()
    assert usage.entry_time(MODEL_FILES, "k1") == 7 * DAY
    assert usage.entry_time(MODEL_FILES, "k2") is None
    assert usage.entry_names(MODEL_FILES) == ["k1"]
    assert usage.entry_names("wheelhouse") == []
    usage.forget_image("modelbus/runtime:abc")
    usage.forget_entry(MODEL_FILES, "k1")
    usage.forget_entry(MODEL_FILES, "k1")  # twice is fine
    assert usage.image_times() == {"registry.local:5000/team/img:1": 6 * DAY}
    assert usage.entry_time(MODEL_FILES, "k1") is None


def test_touch_without_time_records_now(tmp_path: Path) -> None:
    usage = UsageRecords(tmp_path)
    usage.touch_image("modelbus/depset:x", at=1.0)
    usage.touch_image("modelbus/depset:x")
    assert usage.image_times()["modelbus/depset:x"] > 1.0


def test_usage_failure_is_logged_not_raised(tmp_path: Path) -> None:
    (tmp_path / "usage").write_text("a file where a directory belongs")
    UsageRecords(tmp_path).touch_image("modelbus/runtime:abc")
    assert UsageRecords(tmp_path).image_times() == {}


def image(
    name: str, parent: str = "", size: int = 0, created: float = 0.0, tags: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
) -> StoredImage:
    return StoredImage(name, parent, tags, size, created, labels or {})


def tree() -> list[StoredImage]:
    """rootfs <- base <- depset d1 <- runtimes r1, r2; base <- d2 <- r3 (through an
    intermediate); a dangling install stage and a foreign image on base."""
    return [
        image("rootfs", size=150 * MB, tags=("modelbus/rootfs:bookworm-1",)),
        image("base", "rootfs", 170 * MB, tags=("modelbus/base:bookworm-py311",)),
        image("d1", "base", 600 * MB, tags=("modelbus/depset:1",)),
        image("r1", "d1", 601 * MB, tags=("modelbus/runtime:1",)),
        image("r2", "d1", 602 * MB, tags=("modelbus/runtime:2",)),
        image("d2", "base", 800 * MB, tags=("modelbus/depset:2",)),
        image("step", "d2", 800 * MB),
        image("r3", "step", 803 * MB, tags=("modelbus/runtime:3",)),
        image("stage", "base", 700 * MB, created=1 * DAY, labels={"modelbus.stage": "install"}),
        image("mine", "base", 171 * MB, tags=("someone/app:1",)),
    ]


def used(**days_ago: float) -> dict[str, float]:
    tags = {"r1": "modelbus/runtime:1", "r2": "modelbus/runtime:2", "r3": "modelbus/runtime:3",
            "d1": "modelbus/depset:1", "d2": "modelbus/depset:2",
            "base": "modelbus/base:bookworm-py311", "rootfs": "modelbus/rootfs:bookworm-1"}
    return {tags[k]: NOW - d * DAY for k, d in days_ago.items()}


def names(plan: list[ImageRemoval]) -> list[str]:
    return [item.name for item in plan]


def test_last_use_rises_from_the_images_built_on_it() -> None:
    store = Store(tree(), [], used(r1=30, r2=3, d1=40, r3=20, d2=1))
    assert store.last_used["d1"] == NOW - 3 * DAY
    assert store.last_used["d2"] == NOW - 1 * DAY
    assert store.last_used["base"] == NOW - 1 * DAY  # its newest descendant: d2
    assert store.last_used["stage"] == 1 * DAY  # never recorded: its creation
    assert "mine" not in store.kinds and "step" not in store.kinds
    assert store.kinds["stage"] == "stage"


def test_sizes_are_exclusive_and_add_up() -> None:
    store = Store(tree(), [], {})
    assert [store.exclusive_size(i) for i in ("rootfs", "base", "d1", "r1", "r3", "stage")] \
        == [150 * MB, 20 * MB, 430 * MB, 1 * MB, 3 * MB, 530 * MB]
    assert store.total_size() == (150 + 20 + 430 + 1 + 2 + 630 + 3 + 530) * MB


def test_prune_removes_idle_images_built_on_others_first() -> None:
    store = Store(tree(), [], used(r1=30, r2=10, d1=40, r3=20, d2=1))
    plan = plan_prune(store, PRUNED_KINDS, NOW, max_idle_s=7 * DAY)
    assert names(plan) == ["modelbus/runtime:3", "modelbus/runtime:1", "modelbus/runtime:2",
                           "stage", "modelbus/depset:1"]
    assert [(p.kind, p.size, round(p.idle_s / DAY)) for p in plan] == [
        ("runtime", 3 * MB, 20), ("runtime", 1 * MB, 30), ("runtime", 2 * MB, 10),
        ("stage", 530 * MB, 99), ("depset", 430 * MB, 10)]
    # d2 was used a day ago; base and rootfs are not asked for, and "mine" is built on base.
    assert names(plan_prune(store, {"base", "rootfs"}, NOW, 7 * DAY)) == []


def test_prune_keeps_what_a_container_uses_and_what_it_is_built_on() -> None:
    store = Store(tree(), ["r1", "stage"], used(r1=30, r2=10, d1=40, r3=20, d2=30))
    plan = plan_prune(store, PRUNED_KINDS, NOW, max_idle_s=7 * DAY)
    assert names(plan) == ["modelbus/runtime:3", "modelbus/runtime:2", "modelbus/depset:2"]


def test_prune_of_base_kinds_only_when_nothing_is_built_on_them() -> None:
    images = [i for i in tree() if i.id in ("rootfs", "base", "d1", "r1")]
    store = Store(images, [], used(r1=30, d1=30, base=30, rootfs=30))
    assert names(plan_prune(store, PRUNED_KINDS, NOW, 7 * DAY)) \
        == ["modelbus/runtime:1", "modelbus/depset:1"]
    every = PRUNED_KINDS | {"base", "rootfs"}
    assert names(plan_prune(store, every, NOW, 7 * DAY)) == [
        "modelbus/runtime:1", "modelbus/depset:1", "modelbus/base:bookworm-py311",
        "modelbus/rootfs:bookworm-1"]


def test_an_image_with_a_foreign_tag_is_not_ours() -> None:
    images = [image("base", size=170 * MB, tags=("modelbus/base:x",)),
              image("d", "base", 600 * MB, tags=("modelbus/depset:1", "team/deps:1"))]
    store = Store(images, [], {})
    assert names(plan_prune(store, PRUNED_KINDS, NOW, 0.0)) == []


def test_budget_evicts_least_recently_used_until_under() -> None:
    store = Store(tree(), [], used(r1=30, r2=10, d1=40, r3=20, d2=1))
    total = store.total_size()
    assert plan_budget(store, total, NOW) == []
    # The stage (created 99 days ago) goes first, then the oldest runtime image.
    assert names(plan_budget(store, total - 530 * MB - 1, NOW)) == ["stage", "modelbus/runtime:1"]
    # d1 (last used through r2, 10 days ago) can go only after both its runtime images.
    assert names(plan_budget(store, total - 600 * MB, NOW)) == [
        "stage", "modelbus/runtime:1", "modelbus/runtime:3", "modelbus/runtime:2",
        "modelbus/depset:1"]


def test_budget_never_evicts_kept_in_use_or_base() -> None:
    store = Store(tree(), ["r1"], used(r1=30, r2=10, d1=40, r3=20, d2=1))
    plan = plan_budget(store, 0, NOW, keep=["r3"])
    # r1 is in use (so d1 stays), r3 just built (so d2 stays); base and rootfs are not evicted.
    assert names(plan) == ["stage", "modelbus/runtime:2"]


def test_budget_within_a_scope_counts_only_its_images() -> None:
    scope = Scope({"modelbus/runtime": "runtime"}, stage_labels=())
    store = Store(tree(), [], used(r1=30, r2=10, r3=20), scope)
    assert store.total_size() == 6 * MB
    assert names(plan_budget(store, 3 * MB, NOW)) == ["modelbus/runtime:1", "modelbus/runtime:3"]


def test_stale_cache_entries_oldest_first(tmp_path: Path) -> None:
    entries = [CacheEntry("wheelhouse", tmp_path / "a", 10, NOW - 8 * DAY),
               CacheEntry("models", tmp_path / "b", 20, NOW - 9 * DAY),
               CacheEntry("models", tmp_path / "c", 30, NOW - 1 * DAY)]
    assert stale_entries(entries, NOW, 7 * DAY) == [entries[1], entries[0]]


def test_tree_size_counts_files_below(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "sub" / "b").write_bytes(b"y" * 23)
    os.symlink("/etc/passwd", tmp_path / "link")
    assert tree_size(tmp_path) == 123 + len("/etc/passwd")


def test_prune_with_a_bad_duration_fails_with_one_line() -> None:
    result = CliRunner().invoke(images, ["prune", "--unused-for", "7x"])
    assert result.exit_code == 1
    assert result.stderr == "error: not a duration: '7x' (e.g. 30m, 12h, 7d)\n"
    assert result.stdout == ""
