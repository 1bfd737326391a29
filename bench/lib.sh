# Shared by the bench scripts (sourced): the servers they start, killed on
# exit; waiting for a port; a process's CPU ticks.
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; done' EXIT
# wait_port PORT: until something listens on 127.0.0.1:PORT (60 s at most).
wait_port() { for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened"; return 1; }
# ticks PID: CPU ticks (user + system) of a process, every thread included.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
