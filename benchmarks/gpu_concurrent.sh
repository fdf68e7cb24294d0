#!/usr/bin/env bash
# Run several GPU scripts at once on one GPU (each in the background with its own output folder
# $OUT/<name>, its log in $OUT/<name>/run.log), wait for all, then bundle what comes back for a
# device that returns few files: every *.safetensors stays as $OUT/<name>__<file>, everything
# else goes into $OUT/results.tar.gz. Each script keeps its own time limits; a script that fails
# does not stop the others; DEADLINE (seconds, default 540) stops every script still running
# then, so that the bundling always happens inside a device command's time limit.
# Usage: OUT=dir UMETA_SHARED_DATA=dir bash benchmarks/gpu_concurrent.sh NAME=SCRIPT [NAME=SCRIPT ...]
#   with extra environment for one script as 'NAME=SCRIPT:VAR=value;VAR=value' (values may hold
#   commas and spaces)
set -u
OUT=${OUT:?set OUT}
export UMETA_SHARED_DATA=${UMETA_SHARED_DATA:?set UMETA_SHARED_DATA}
[ $# -gt 0 ] || { echo "name at least one NAME=SCRIPT" >&2; exit 2; }
names=()
for spec in "$@"; do
  name=${spec%%=*}
  rest=${spec#*=}
  script=${rest%%:*}
  vars=""
  [ "$rest" != "$script" ] && vars=${rest#*:}
  [ -f "$script" ] || { echo "no script $script" >&2; exit 2; }
  mkdir -p "$OUT/$name"
  (
    IFS=';' read -ra assignments <<<"$vars"
    for a in "${assignments[@]}"; do [ -n "$a" ] && export "${a?}"; done
    start=$(date +%s)
    OUT="$OUT/$name" timeout -k 10 "${DEADLINE:-540}" bash "$script" >"$OUT/$name/run.log" 2>&1
    echo "exit $? after $(($(date +%s) - start)) s" >>"$OUT/$name/run.log"
  ) &
  names+=("$name")
done
wait
for name in "${names[@]}"; do
  echo "== $name: $(tail -n 1 "$OUT/$name/run.log")"
  find "$OUT/$name" -name '*.safetensors' | while read -r f; do mv "$f" "$OUT/${name}__$(basename "$f")"; done
done
(cd "$OUT" && tar czf results.tar.gz "${names[@]}" && rm -rf "${names[@]}")
ls -la "$OUT"
