"""The runtime from several Python threads at once."""
import threading

import numpy as np

import enigma


@enigma.kernel
def affine(a: enigma.f32, k: enigma.Scalar(enigma.f32), out: enigma.f32):
    i = enigma.thread_position_in_grid
    with enigma.for_range(0, 8, init=[a[i]]) as (j, acc):
        acc[0] = acc[0] * 0.5 + k
    out[i] = acc[0]


def reference(a, k):
    acc = a.copy()
    for _ in range(8):
        acc = acc * np.float32(0.5) + np.float32(k)
    return acc


def run_threads(target, n=4):
    errors = []
    barrier = threading.Barrier(n)

    def wrapped(t):
        try:
            barrier.wait(timeout=60)
            target(t)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=wrapped, args=(t,)) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, errors


def test_execute_from_four_threads(runtime):
    ck = enigma.compile(affine)
    results = {}

    def work(t):
        rng = np.random.default_rng(t)
        for it in range(25):
            n = 1000 + 37 * t + it
            a = rng.standard_normal(n).astype(np.float32)
            k = float(t * 10 + it)
            raw = runtime.execute(ck, [a], n * 4, (n, 1, 1), (64, 1, 1), scalars=[k])
            got = np.frombuffer(raw, np.float32)
            if not np.array_equal(got, reference(a, k)):
                raise AssertionError(f"thread {t} iteration {it}: wrong result")
        results[t] = True

    run_threads(work)
    assert sorted(results) == [0, 1, 2, 3]


def test_prepared_kernels_and_errors_from_four_threads(runtime):
    ck = enigma.compile(affine)

    def work(t):
        n = 4096 + t
        a = np.full(n, float(t), np.float32)
        p = runtime.prepare(ck, [a], n * 4, scalars=[float(t)])
        try:
            for it in range(20):
                if it % 5 == 0:       # errors in one thread do not disturb the others
                    try:
                        runtime.execute(ck, [a], n * 4, (0, 1, 1), (64, 1, 1), scalars=[1.0])
                    except RuntimeError:
                        pass
                    else:
                        raise AssertionError("expected a validation error")
                ms = p.dispatch_timed((n, 1, 1), (128, 1, 1))
                assert isinstance(ms, float) and ms >= 0
                got = np.frombuffer(p.read_output(), np.float32)
                if not np.array_equal(got, reference(a, float(t))):
                    raise AssertionError(f"thread {t}: wrong result")
        finally:
            p.release()

    run_threads(work)


def test_tracing_from_four_threads(runtime):
    """Each thread traces and compiles its own kernel (tracing state is per thread)."""
    outs = {}

    def work(t):
        c = float(t) + 0.5

        @enigma.kernel
        def per_thread(a: enigma.f32, out: enigma.f32):
            i = enigma.thread_position_in_grid
            with enigma.for_range(0, 50, init=[a[i]]) as (j, acc):   # long enough traces to interleave
                acc[0] = acc[0] + c
            out[i] = acc[0]

        ck = enigma.compile(per_thread, emit_only=True)
        a = np.arange(10, dtype=np.float32)
        raw = runtime.execute(ck, [a], 40, (10, 1, 1), (10, 1, 1))
        outs[t] = np.frombuffer(raw, np.float32)

    run_threads(work)
    for t in range(4):
        want = np.arange(10, dtype=np.float32)
        for _ in range(50):
            want = want + np.float32(t + 0.5)
        assert np.array_equal(outs[t], want), t
