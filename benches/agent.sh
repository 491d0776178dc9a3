#!/usr/bin/env bash
# What a node's agent costs (issue 21): N containers from M images on the
# local Docker Engine (images derived from the debootstrap root, nothing
# pulled), a real `periscope serve` on loopback, then
#   1. a first crawl of the host (`periscope-agent crawl --server`): wall,
#      user+sys CPU, peak RSS;
#   2. `periscope-agent run --interval I` for CYCLES full crawls: CPU per
#      unchanged crawl, steady RSS, bytes sent per crawl;
#   3. one more container started: seconds from `docker run` returning to
#      the agent's event crawl of it being acknowledged by the server.
# Targets (issue 21): unchanged crawl <= 0.3 s CPU, steady RSS < 30 MB,
# first-crawl peak < 60 MB and < 2 s wall, start-to-acknowledged < 2 s.
#
#   benches/agent.sh          N=100 M=10 INTERVAL=15 CYCLES=5
#   PERISCOPE_SERVER=path     a `periscope` binary to serve with (default: a
#                             debug build; the server's speed only enters the
#                             acknowledgement time)
#
# The agent is a release build. Everything created is labelled and removed on
# exit, interrupted or not.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100}" M="${M:-10}" INTERVAL="${INTERVAL:-15}" CYCLES="${CYCLES:-5}"
label="periscope-bench-agent=$$"
work="$(mktemp -d /tmp/periscope-agent-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ids="$(docker ps -aq --filter "label=$label")"
  [[ -n "$ids" ]] && docker rm -f $ids >/dev/null 2>&1 || true
  imgs="$(docker images -q --filter "label=$label" | sort -u)"
  [[ -n "$imgs" ]] && docker rmi -f $imgs >/dev/null 2>&1 || true
  docker rmi -f "periscope-bench-agent/base:$$" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p periscope-agent
agent="$target/release/periscope-agent"
server="${PERISCOPE_SERVER:-}"
if [[ -z "$server" ]]; then
  cargo build -q -p periscope-server --bin periscope
  server="$target/debug/periscope"
fi

root="$(scripts/debian-rootfs.sh)"
echo "bench: importing the debootstrap root, deriving $M images, starting $N containers" >&2
tar -C "$root" -c . | docker import --change "LABEL $label" - "periscope-bench-agent/base:$$" >/dev/null
for m in $(seq 1 "$M"); do
  ctx="$work/ctx$m"; mkdir -p "$ctx"
  printf 'FROM periscope-bench-agent/base:%s\nCOPY marker /etc/bench-image\n' "$$" > "$ctx/Dockerfile"
  echo "image $m of run $$" > "$ctx/marker"
  DOCKER_BUILDKIT=0 docker build -q --label "$label" -t "periscope-bench-agent/img$m:$$" "$ctx" >/dev/null
done
for i in $(seq 1 "$N"); do
  m=$(( (i - 1) % M + 1 ))
  docker run -d --label "$label" "periscope-bench-agent/img$m:$$" sleep infinity >/dev/null
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$server" serve --data "$work/data" --listen "127.0.0.1:$port" > "$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q "listening\|gRPC" "$work/server.log" 2>/dev/null && break
  sleep 0.2
done
url="http://127.0.0.1:$port"

# 1. First crawl.
/usr/bin/time -f "%e %U %S %M" -o "$work/first.time" \
  "$agent" crawl --server "$url" --host bench-first > "$work/first.log" 2>&1
read -r f_wall f_user f_sys f_rss < "$work/first.time"

# 2. The daemon: every full crawl's line, with the process's CPU ticks and RSS when it was printed.
"$agent" run --server "$url" --host bench-run --interval "$INTERVAL" --splay 0 --spool-dir "$work/spool" \
  2> "$work/run.log" &
apid=$!
pids+=($apid)
python3 - "$apid" "$work/run.log" "$CYCLES" "$label" "$$" "$work/cycles.json" <<'PY'
import json, os, subprocess, sys, time
pid, log, cycles, label, run, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
tick = os.sysconf("SC_CLK_TCK")

def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick

def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1]) * 1024
    return 0

def follow(pred, timeout):
    deadline = time.time() + timeout
    with open(log) as f:
        f.seek(follow.pos)
        while time.time() < deadline:
            l = f.readline()
            if not l:
                time.sleep(0.01)
                continue
            if pred(l):
                follow.pos = f.tell()
                return l
    raise SystemExit(f"bench: nothing in {timeout} s; log: {log}")
follow.pos = 0

rows = []
for _ in range(cycles + 1):
    l = follow(lambda l: l.startswith("periscope-agent: full crawl:"), 600)
    sent = int(l.split(" bytes;")[0].rsplit(", ", 1)[1])
    rows.append({"cpu": cpu(), "rss": rss(), "bytes": sent, "line": l.strip()})
# 3. A container started now: its event crawl, acknowledged.
time.sleep(1)
t0 = time.time()
cid = subprocess.run(["docker", "run", "-d", "--label", label, f"periscope-bench-agent/img1:{run}", "sleep", "infinity"],
                     capture_output=True, text=True, check=True).stdout.strip()
t_started = time.time()
l = follow(lambda l: l.startswith(f"periscope-agent: event crawl of container {cid}") and "delivered" in l, 120)
t_acked = time.time()
json.dump({"cycles": rows, "event_s": t_acked - t_started, "docker_run_s": t_started - t0, "event_line": l.strip()},
          open(out, "w"))
PY

python3 - "$work/cycles.json" "$f_wall" "$f_user" "$f_sys" "$f_rss" "$N" "$M" "$INTERVAL" "$agent" <<'PY'
import json, statistics, subprocess, sys
d = json.load(open(sys.argv[1]))
f_wall, f_user, f_sys, f_rss = map(float, sys.argv[2:6])
n, m, interval, agent = sys.argv[6], sys.argv[7], sys.argv[8], sys.argv[9]
c = d["cycles"]
per = [b["cpu"] - a["cpu"] for a, b in zip(c[1:], c[2:])]
steady = [x["rss"] for x in c[1:]]
sent = [x["bytes"] for x in c[2:]]
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
print(f"periscope-agent (release) on this host: {n} containers from {m} images, {cores} cores, interval {interval} s")
print(f"{'figure':<52}{'measured':>14}{'target':>12}")
def row(name, v, t):
    print(f"{name:<52}{v:>14}{t:>12}")
row("first crawl: wall", f"{f_wall:.2f} s", "< 2 s")
row("first crawl: CPU (user+sys)", f"{f_user + f_sys:.2f} s", "")
row("first crawl: peak RSS", f"{f_rss / 1024:.1f} MB", "< 60 MB")
row(f"run: CPU per unchanged full crawl (median of {len(per)})", f"{statistics.median(per):.3f} s", "<= 0.3 s")
row("run: CPU per unchanged full crawl (max)", f"{max(per):.3f} s", "")
row("run: steady RSS (max after the first crawl)", f"{max(steady) / 1e6:.1f} MB", "< 30 MB")
row("run: bytes sent per unchanged crawl (median)", f"{statistics.median(sent):.0f}", "")
row("container start to its rows acknowledged", f"{d['event_s']:.2f} s", "< 2 s")
print("run's first full crawl:", c[0]["line"])
print("an unchanged one:     ", c[-1]["line"])
print("the event crawl:      ", d["event_line"])
PY
