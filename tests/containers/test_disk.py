"""Disk upkeep against the real engine: depset builds leave no stage image, ``modelbus
images prune`` (a subprocess with its own cache directory) and the LRU image budget.

Only images this test builds can qualify: they are tagged with a test id and their usage
is recorded thousands of days back, while every other image of the engine is newer than
the idle time asked for (and has no usage record in the test's cache directory).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from modelbus_worker.images.depset import build_depset_image
from modelbus_worker.images.docker_build import ImageBuildFailed
from modelbus_worker.images.image_store import keep_under_budget
from modelbus_worker.images.retention import Scope
from modelbus_worker.images.usage import MODEL_FILES, WHEELHOUSE, UsageRecords
from modelbus_worker.settings import ContainerSettings

from .disk_images import (
    MIB,
    TEST_LABEL,
    build_blob_image,
    remove_test_images,
    stage_images,
    write_wheel,
)

DAY = 86400.0


@pytest.fixture
def test_id(docker_client: Any) -> Iterator[str]:
    test_id = uuid.uuid4().hex[:10]
    yield test_id
    remove_test_images(docker_client, test_id)


def exists(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def run_sleeper(client: Any, tag: str, test_id: str) -> Any:
    return client.containers.run(tag, detach=True, network_mode="none",
                                 labels={TEST_LABEL: test_id})


def test_depset_build_leaves_no_stage_image(
    docker_client: Any, base_image: str, tmp_path: Path, test_id: str
) -> None:
    settings = ContainerSettings(cache_dir=tmp_path / "cache")
    wheels = tmp_path / "wheelhouse" / "tiny"
    write_wheel(wheels)
    (wheels / "requirements.txt").write_text("tinypkg==1.0\n")
    tag = f"modelbus/depset:test-{test_id}"
    before = set(stage_images(docker_client))

    build_depset_image(docker_client, settings, wheels, base_image, tag)

    assert set(stage_images(docker_client)) <= before
    built = docker_client.images.get(tag)
    assert built.labels["modelbus.image"] == "depset"
    assert "modelbus.stage" not in built.labels and "modelbus.build" not in built.labels
    out = docker_client.containers.run(
        tag, ["/opt/venv/bin/python", "-c", "import tinypkg; print(tinypkg.VALUE)"],
        network_mode="none", remove=True, labels={TEST_LABEL: test_id},
    )
    assert out == b"42\n"
    usage = UsageRecords(settings.cache_dir)
    assert tag in usage.image_times()
    assert usage.entry_time(WHEELHOUSE, "tiny") is not None
    assert list((settings.build_root).iterdir()) == []  # the build context is gone too


def test_failed_depset_build_leaves_no_stage_image(
    docker_client: Any, base_image: str, tmp_path: Path, test_id: str
) -> None:
    settings = ContainerSettings(cache_dir=tmp_path / "cache")
    wheels = tmp_path / "wheelhouse" / "broken"
    write_wheel(wheels)
    (wheels / "requirements.txt").write_text("tinypkg==1.0\nnot-in-the-wheelhouse==1.0\n")
    tag = f"modelbus/depset:test-{test_id}"
    before = set(stage_images(docker_client))

    with pytest.raises(ImageBuildFailed, match="not-in-the-wheelhouse"):
        build_depset_image(docker_client, settings, wheels, base_image, tag)

    assert set(stage_images(docker_client)) <= before
    assert not exists(docker_client, tag)


def prune_command(cache_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELBUS_WORKER_CACHE_DIR": str(cache_dir)}
    return subprocess.run(
        [sys.executable, "-m", "modelbus", "images", "prune", "--unused-for", "3650d", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_prune_removes_unused_images_and_cache_entries_but_not_those_in_use(
    docker_client: Any, base_image: str, tmp_path: Path, test_id: str
) -> None:
    cache = tmp_path / "cache"
    usage = UsageRecords(cache)
    long_ago = time.time() - 4000 * DAY
    tags: dict[str, str] = {}
    for chain in ("idle", "busy"):
        depset = tags[f"depset-{chain}"] = f"modelbus/depset:test-{test_id}-{chain}"
        runtime = tags[f"runtime-{chain}"] = f"modelbus/runtime:test-{test_id}-{chain}"
        build_blob_image(docker_client, tmp_path / "build", base_image, depset, 2 * MIB, test_id)
        build_blob_image(docker_client, tmp_path / "build", depset, runtime, MIB, test_id)
        usage.touch_image(depset, at=long_ago)
        usage.touch_image(runtime, at=long_ago)
    busy = run_sleeper(docker_client, tags["runtime-busy"], test_id)
    usage.touch_image(f"modelbus/runtime:test-{test_id}-gone")  # records of what is gone
    usage.touch_entry(WHEELHOUSE, "gone")
    entries = {}
    for kind, name, size, days in ((WHEELHOUSE, "idle", 3000, 4001), (WHEELHOUSE, "fresh", 10, 0),
                                   (MODEL_FILES, "idle", 500, 4000), (MODEL_FILES, "fresh", 10, 0)):
        entry = entries[kind, name] = cache / kind / name
        (entry / "sub").mkdir(parents=True)
        (entry / "sub" / "file").write_bytes(b"x" * size)
        usage.touch_entry(kind, name, at=time.time() - days * DAY)

    dry = prune_command(cache, "--dry-run")
    assert (dry.returncode, dry.stderr) == (0, "")
    expected = [
        f"runtime {tags['runtime-idle']}  1.0 MB  unused for 4000.0d",
        f"depset {tags['depset-idle']}  2.0 MB  unused for 4000.0d",
        f"wheelhouse {entries[WHEELHOUSE, 'idle']}  2.9 KB  unused for 4001.0d",
        f"model-files {entries[MODEL_FILES, 'idle']}  500 B  unused for 4000.0d",
    ]
    freed = 3 * MIB + 3500
    assert dry.stdout.splitlines() == [
        *(f"would remove {line}" for line in expected), f"would free 3.0 MB ({freed} bytes)"]
    assert all(exists(docker_client, tag) for tag in tags.values())
    assert all(path.is_dir() for path in entries.values())

    done = prune_command(cache)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        *(f"removed {line}" for line in expected), f"freed 3.0 MB ({freed} bytes)"]
    assert {name: exists(docker_client, tag) for name, tag in tags.items()} == {
        "depset-idle": False, "runtime-idle": False, "depset-busy": True, "runtime-busy": True}
    assert {key: path.is_dir() for key, path in entries.items()} == {
        (WHEELHOUSE, "idle"): False, (WHEELHOUSE, "fresh"): True,
        (MODEL_FILES, "idle"): False, (MODEL_FILES, "fresh"): True}
    assert sorted(usage.image_times()) == [tags["depset-busy"], tags["runtime-busy"]]
    assert usage.entry_names(WHEELHOUSE) == ["fresh"]
    assert usage.entry_names(MODEL_FILES) == ["fresh"]
    busy.reload()
    assert busy.status == "running"


def test_budget_evicts_the_least_recently_used_image_not_one_in_use(
    docker_client: Any, base_image: str, tmp_path: Path, test_id: str
) -> None:
    repository = f"modelbus-test-{test_id}"
    scope = Scope({f"{repository}/runtime": "runtime", f"{repository}/depset": "depset"},
                  stage_labels=())
    settings = ContainerSettings(cache_dir=tmp_path / "cache", image_budget=int(4.5 * MIB))
    usage = UsageRecords(settings.cache_dir)
    now = time.time()
    depset = f"{repository}/depset:1"
    build_blob_image(docker_client, tmp_path / "build", base_image, depset, 2 * MIB, test_id)
    usage.touch_image(depset, at=now - 40 * DAY)
    runtimes = [f"{repository}/runtime:{n}" for n in (1, 2, 3)]
    for tag, days in zip(runtimes, (30, 20, 10), strict=True):
        build_blob_image(docker_client, tmp_path / "build", depset, tag, MIB, test_id)
        usage.touch_image(tag, at=now - days * DAY)
    run_sleeper(docker_client, runtimes[0], test_id)  # the least recently used, but in use

    # 5 MiB in all: runtime 1 is in use, runtime 3 was just built: runtime 2 goes.
    freed = keep_under_budget(docker_client, settings, keep=runtimes[2], scope=scope)

    assert freed == MIB
    assert [exists(docker_client, tag) for tag in [depset, *runtimes]] == [True, True, False, True]
    assert runtimes[1] not in usage.image_times()
    # Under budget now: nothing more goes.
    assert keep_under_budget(docker_client, settings, keep=runtimes[2], scope=scope) == 0
