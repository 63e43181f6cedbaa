"""ModelClient against the stand-in server through the real SDKs: answers, cache, faults."""

from __future__ import annotations

import time

import pytest

from support import API_KEY, clip
from video_reasoning import media
from video_reasoning.client import ModelClient
from video_reasoning.config import BackendSettings, WorkflowSettings
from video_reasoning.media import MediaRef
from video_reasoning.models import CaptionAnswer, MCQAnswer
from video_reasoning.providers.base import Request
from video_reasoning.retry import BlockedError, ModelCallError

BACKENDS = ("gemini", "openai")


@pytest.fixture
def make_client(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", standin.url)

    def make(backend: str, attempts: int = 5, timeout: float = 30, video_input: str = "video_url",
             **wf) -> ModelClient:
        if backend == "gemini":
            block = BackendSettings(backend="gemini", gemini={"timeout": timeout})
        else:
            block = BackendSettings(backend="openai", openai={"base_url": standin.url + "/v1", "model_name": "vl",
                                                              "timeout": timeout, "video_input": video_input})
        workflow = WorkflowSettings(retry_attempts=attempts, retry_max_seconds=60, **wf)
        return ModelClient("vlm", block, workflow, API_KEY, str(tmp_path / ".cache"), context="video v1, step 3")

    return make


def ask(client, prompt="Write questions", model=MCQAnswer, media_ref=None):
    return client.ask(Request(prompt_key="anomaly_mcq", prompt=prompt, answer_model=model, media=media_ref))


@pytest.mark.parametrize("backend", BACKENDS)
def test_structured_answer_validated_and_cached(make_client, standin, backend):
    client = make_client(backend)
    reply = ask(client)
    assert MCQAnswer.model_validate(reply.answer).items
    assert reply.input_tokens > 0 and reply.backend == backend
    standin.reset()
    assert ask(client).answer == reply.answer
    assert standin.calls() == []  # answered from the cache


def test_schemas_sent_are_the_sdks_own(make_client, standin):
    """Gemini gets pydantic's schema as is; OpenAI the SDK's strict conversion, which is
    closed (every property required, no additional properties), as strict mode requires."""
    ask(make_client("gemini"))
    assert standin.calls("gemini")[-1]["schema"] == MCQAnswer.model_json_schema()
    ask(make_client("openai"), prompt="other")
    schema = standin.calls("openai")[-1]["schema"]
    item = schema["$defs"]["MCQItem"]
    assert item["additionalProperties"] is False and set(item["required"]) == set(item["properties"])
    assert schema["additionalProperties"] is False and schema["required"] == ["items"]


def test_two_videos_never_share_a_cached_answer(make_client, standin):
    client = make_client("gemini")
    for video in ("sha-of-video-a", "sha-of-video-b", "sha-of-video-a"):
        client.ask(Request(prompt_key="normal_description", prompt="The same captions", answer_model=MCQAnswer,
                           video=video))
    assert len(standin.calls("gemini")) == 2  # the third request is video a's again: from the cache


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fault", ["429", "500", "503", "timeout", "badjson", "schema", "empty", "truncated"])
def test_retryable_faults_are_retried(make_client, standin, backend, fault):
    standin.hang_seconds = 2.5
    client = make_client(backend, timeout=1)
    standin.script = [fault]
    reply = ask(client)
    assert MCQAnswer.model_validate(reply.answer).items
    assert reply.attempts == 2
    calls = standin.calls(backend)
    assert len(calls) == 2
    if fault in ("badjson", "schema"):
        assert calls[1]["turns"] > calls[0]["turns"]  # re-asked with the validation error


@pytest.mark.parametrize("backend", BACKENDS)
def test_retry_after_is_honoured(make_client, standin, backend):
    client = make_client(backend)
    seen = []
    orig = standin._reply_fault

    def slow_429(h, fault, kind, text):
        if fault == "429":
            seen.append(time.monotonic())
            h._send(429, {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}},
                    {"Retry-After": "1.5"})
            return True
        seen.append(time.monotonic())
        return orig(h, fault, kind, text)

    standin._reply_fault = slow_429
    standin.script = ["429"]
    ask(client)
    assert seen[1] - seen[0] >= 1.4


@pytest.mark.parametrize("backend, var", [("gemini", "GOOGLE_API_KEY"), ("openai", "OPENAI_API_KEY")])
def test_bad_key_is_permanent_and_named(make_client, standin, backend, var):
    standin.api_key = "another-key"
    client = make_client(backend)
    with pytest.raises(ModelCallError) as err:
        ask(client)
    assert err.value.permanent and var in str(err.value)
    assert API_KEY not in str(err.value)
    assert len(standin.calls()) <= 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_exhausted_retries_name_video_step_model_and_error(make_client, standin, backend):
    client = make_client(backend, attempts=3)
    standin.script = ["500", "500", "500"]
    with pytest.raises(ModelCallError) as err:
        ask(client)
    msg = str(err.value)
    assert "video v1, step 3" in msg and backend in msg and "500" in msg and "3 attempts" in msg
    assert not err.value.permanent


@pytest.mark.parametrize("backend", BACKENDS)
def test_safety_block_recorded_not_retried(make_client, standin, backend):
    client = make_client(backend)
    standin.script = ["blocked"]
    with pytest.raises(BlockedError):
        ask(client)
    assert len(standin.calls()) == 1


def test_gemini_upload_once_reused_and_redone_when_gone(make_client, standin):
    probe = media.probe(clip("bikes.mp4"))
    client = make_client("gemini")
    for i in range(3):
        ask(client, prompt=f"caption {i}", model=CaptionAnswer, media_ref=MediaRef(probe, 2.0 * i, 2.0 * i + 2))
    assert len(standin.calls("upload")) == 1
    other = make_client("gemini")  # another job: reuses the persisted upload
    ask(other, prompt="caption x", model=CaptionAnswer, media_ref=MediaRef(probe))
    assert len(standin.calls("upload")) == 1
    standin.uploads.clear()  # the server forgot the file (expired, deleted)
    ask(other, prompt="caption y", model=CaptionAnswer, media_ref=MediaRef(probe))
    assert len(standin.calls("upload")) == 2
    offsets = [c["video_metadata"] for c in standin.calls("gemini")][:3]
    assert offsets[1] == {"startOffset": "2.000s", "endOffset": "4.000s"}


def test_openai_clips_and_frames(make_client, standin, long_video):
    client = make_client("openai")
    probe = media.probe(clip("bikes.mp4"))
    ask(client, prompt="chunk", model=CaptionAnswer, media_ref=MediaRef(probe, 2.0, 4.0))
    call = standin.calls("openai")[-1]
    assert call["media"] == ["video_url"] and call["media_sha"] != probe.sha256  # a cut clip, not the file
    ask(client, prompt="whole", model=CaptionAnswer, media_ref=MediaRef(probe))
    assert standin.calls("openai")[-1]["media_sha"] == probe.sha256
    lp = media.probe(long_video)
    ask(client, prompt="long", model=CaptionAnswer, media_ref=MediaRef(lp))
    assert standin.calls("openai")[-1]["media"] == ["image_url"] * 35


def test_openai_video_input_frames_sends_timestamped_images_only(make_client, standin):
    """For image-only servers (Ollama): a short chunk and a short whole video go as frames,
    each after the line naming its time, never as video_url."""
    client = make_client("openai", video_input="frames")
    probe = media.probe(clip("bikes.mp4"))
    ask(client, prompt="chunk", model=CaptionAnswer, media_ref=MediaRef(probe, 2.0, 6.0))
    chunk = standin.calls("openai")[-1]
    assert chunk["media"] == ["image_url"] * 2 and "Frame at 2.0 s:" in chunk["prompt"]
    ask(client, prompt="whole", model=CaptionAnswer, media_ref=MediaRef(probe))
    whole = standin.calls("openai")[-1]
    assert set(whole["media"]) == {"image_url"} and len(whole["media"]) == 5 and "Frame at 8.0 s:" in whole["prompt"]
    # the cache tells the modes apart
    assert not make_client("openai").is_cached(Request(prompt_key="anomaly_mcq", prompt="whole",
                                                       answer_model=CaptionAnswer, media=MediaRef(probe)))


def _peak(slots, workers: int = 6) -> int:
    """The most of ``workers`` threads (or their callers) inside ``slots.hold()`` at once."""
    import threading

    live, peak, lock = [0], [0], threading.Lock()

    def work():
        with slots.hold():
            with lock:
                live[0] += 1
                peak[0] = max(peak[0], live[0])
            time.sleep(0.1)
            with lock:
                live[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return peak[0]


def test_on_a_cluster_a_job_sends_no_more_calls_at_once_than_its_units_allow():
    """No machine-wide (flock) slots: the units Snakemake grants are the cap."""
    from video_reasoning.config import WorkflowSettings
    from video_reasoning.slots import JobSlots
    from video_reasoning.steps import JOBS, JOBS_PER_BACKEND, effective_steps

    assert _peak(JobSlots(2)) == 2 and _peak(JobSlots(0)) == 1
    # per backend it calls: JOBS_PER_BACKEND units per call at once, its fan-out capped at
    # half the cap (two jobs of a backend side by side), none of a backend it does not call
    wf = WorkflowSettings(max_workers=4, mode="auto", qa_types=["mcq", "bcq", "temporal_localization"])
    steps = effective_steps(wf)
    k = JOBS_PER_BACKEND
    assert JOBS["caption_video"].call_units(steps, wf, False) == {"vlm_calls": 2 * k, "llm_calls": k}
    assert JOBS["write_qa"].call_units(steps, wf, False) == {"llm_calls": 2 * k}
    assert JOBS["verify_qa"].call_units(steps, wf, False) == {"llm_calls": 2 * k, "vlm_calls": k}
    normal = WorkflowSettings(max_workers=1, mode="normal")
    assert JOBS["caption_video"].call_units(effective_steps(normal), normal, False) == {"vlm_calls": k}
    # pools of JOBS_PER_BACKEND x max_workers units: the calls in flight stay within max_workers
    pool = k * wf.max_workers
    for name in JOBS:
        for res, units in JOBS[name].call_units(steps, wf, False).items():
            jobs_at_once = pool // units
            assert jobs_at_once * (units // k) <= wf.max_workers, (name, res)
    # on one machine: one unit of the main backend; the calls share the machine-wide slots
    assert JOBS["caption_video"].call_units(steps, wf, True) == {"vlm_calls": 1}
    assert JOBS["verify_qa"].call_units(steps, wf, True) == {"llm_calls": 1}


def test_machine_slots_cap_holders_across_threads_and_processes(tmp_path):
    import signal
    import subprocess
    import sys
    import threading

    from video_reasoning.slots import MachineSlots

    slots = MachineSlots(str(tmp_path / "slots"), 2)
    assert _peak(slots) == 2
    # a process killed while holding a slot does not leak it
    code = ("import time\n"
            "from video_reasoning.slots import MachineSlots\n"
            f"s = MachineSlots({str(tmp_path / 'slots')!r}, 2)\n"
            "with s.hold():\n    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    start = time.monotonic()
    done = threading.Event()
    release = threading.Event()

    def take_both():
        with slots.hold(), slots.hold():
            done.set()
            release.wait(10)

    threading.Thread(target=take_both, daemon=True).start()
    assert not done.wait(0.3)          # one slot is taken by the other process
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert done.wait(5) and time.monotonic() - start < 5
    release.set()
