#!/usr/bin/env bash
# One device-tool session on a CUDA machine: install lrnn (and fla from carried wheels), run the kernel tests on the
# GPU, then the named benchmarks. Files go to $OUT (default /tmp/out), few of them because the device tool brings
# back at most 8: a benchmark's JSON as NAME-STEP.json, every benchmark's output in run.log, the last tests step's
# log in gpu_tests.log, and install.log only when the install fails.
#
#   benchmarks/gpu_run.sh tests          # the Triton-face tests of tests/core, kernels, mixers on CUDA
#   benchmarks/gpu_run.sh "tests:tests/kernels tests/core/test_selective_scan.py"   # some of them
#   benchmarks/gpu_run.sh tests bench:chunk_gla bench:selective_scan "bench:scan --dtype bfloat16"
#   benchmarks/gpu_run.sh "fit:configs/audio/lina_espeak_multispeaker.yaml --trainer.max_time=00:00:06:00" \
#       "bench:voice_cloning --stage generate ... --out /tmp/cloning" pack:/tmp/cloning
#
# The tests step runs only ``-m "gpu or kernel"`` (the rest runs on the CPU in CI as well), in parallel
# processes because compiling the kernels for each test's sizes dominates; TEST_SECONDS bounds the step (default
# 330), TEST_TIMEOUT each test (default 240; fla's autotuning in the comparisons needs more beside 15 workers). The
# log names every test as it ends (-v), so a step cut by TEST_SECONDS still says which tests finished.
# A fit step trains a recipe through the lrnn CLI (FIT_SECONDS bounds it, default 600; give the recipe a max_time so
# it stops cleanly); a pack step tars a folder into $OUT as one file (the device tool returns at most 8).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/install.log 2>&1 || {
    cp /tmp/install.log "$OUT/install.log"; cat /tmp/install.log; exit 1; }
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
status=0
n=0
for step in "$@"; do
    n=$((n + 1))
    echo "=== $step ($(date +%T))"
    case "$step" in
        tests | tests:*) paths=${step#tests:}; [ "$step" = tests ] && paths="tests/core tests/kernels tests/mixers"
            timeout -s INT "${TEST_SECONDS:-330}" python3 -m pytest $paths -m "gpu or kernel" -n "${WORKERS:-16}" \
            --timeout "${TEST_TIMEOUT:-240}" -v -rfE --no-header -p no:cacheprovider --durations=15 >"$OUT/gpu_tests.log" 2>&1 || status=1
            tail -60 "$OUT/gpu_tests.log" ;;
        bench:*) read -r name args <<<"${step#bench:}"
            timeout -s INT "${BENCH_SECONDS:-240}" python3 -m lrnn.benchmarks.$name --out "$OUT/$name-$n.json" $args 2>&1 | tee -a "$OUT/run.log" || status=1 ;;
        fit:*) read -r config args <<<"${step#fit:}"
            timeout -s INT "${FIT_SECONDS:-600}" python3 -m lrnn fit --config "$config" $args 2>&1 | tail -n 60 \
                | tee -a "$OUT/run.log" || status=1 ;;
        pack:*) dir=${step#pack:}
            tar -czf "$OUT/$(basename "$dir").tar.gz" -C "$(dirname "$dir")" "$(basename "$dir")" || status=1 ;;
        *) echo "unknown step $step"; status=1 ;;
    esac
done
exit $status
