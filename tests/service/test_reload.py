"""Hot swap: reload answers after the swap, traffic never fails during it, bad artifacts are refused."""

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.service.conftest import client, posts, versions


def served_version(api) -> str:
    return api.get("/readyz").json()["model"]["version"]


def test_reload_a_version_and_back(model_dir: Path) -> None:
    old, new = versions(model_dir)
    with client(model_dir) as api:
        assert served_version(api) == new
        response = api.post("/v1/admin/reload", json={"model": old})
        assert response.status_code == 200, response.text
        assert response.json()["model"]["version"] == old and response.json()["previous"]["version"] == new
        assert served_version(api) == old
        assert api.post("/v1/classify", json={"posts": posts(2)}).json()["model"]["version"] == old
        assert api.post("/v1/admin/reload").json()["model"]["version"] == new  # no body: the configured model


def test_a_corrupt_artifact_is_refused_and_the_old_model_keeps_serving(model_dir: Path, tmp_path: Path) -> None:
    broken = Path(shutil.copytree(model_dir / versions(model_dir)[0], tmp_path / "broken"))
    (broken / "heads.joblib").write_bytes(b"tampered")
    with client(model_dir) as api:
        before = served_version(api)
        response = api.post("/v1/admin/reload", json={"model": str(broken)})
        missing = api.post("/v1/admin/reload", json={"model": str(tmp_path / "nowhere")})
        assert served_version(api) == before
        assert api.post("/v1/classify", json={"posts": posts(1)}).status_code == 200
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "model"] and "checksum mismatch for heads.joblib" in error["msg"]
    assert f"still serving {before}" in error["msg"]
    assert missing.status_code == 422 and "neither a version" in missing.json()["detail"][0]["msg"]


def test_reload_during_traffic_fails_no_request(model_dir: Path) -> None:
    old, new = versions(model_dir)
    with client(model_dir) as api:
        def traffic(worker: int) -> list[tuple[int, str]]:
            seen = []
            for i in range(25):
                response = api.post("/v1/classify", json={"posts": posts(4, start=worker * 100 + i)})
                seen.append((response.status_code, response.json()["model"]["version"]))
            return seen

        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(traffic, worker) for worker in range(4)]
            for target in (old, new, old, new):
                time.sleep(0.05)
                assert api.post("/v1/admin/reload", json={"model": target}).status_code == 200
            results = [item for future in futures for item in future.result()]
    assert {status for status, _ in results} == {200}
    assert {version for _, version in results} <= {old, new} and len(results) == 100


def test_workers_follow_the_latest_file(model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(model_dir, tmp_path / "tiny"))
    old, new = versions(copy)
    with client(copy, watch_seconds=0.1) as api:
        assert served_version(api) == new
        (copy / "latest").write_text(old + "\n")
        deadline = time.monotonic() + 10
        while served_version(api) != old and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served_version(api) == old
