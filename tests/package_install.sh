#!/bin/sh
# package_install.sh DEB: the package installed by dpkg and its units run the way
# systemd runs them, in private namespaces, for tests/test_package.py. Run it as
# root under `unshare -mn` (its own mounts and network): /etc, /usr, /var and /lib
# become overlays on a tmpfs, so neither the host's files nor its dpkg database
# are written, and the loopback device of the new network namespace gives the
# units their fixed ports (5555, 5600, 8080) without meeting anyone's.
#
# Steps: dpkg -i; a conffile edit, then dpkg -i again (kept); the installed
# `swisd demo`; the units broker, gateway and volunteer as systemd would start
# them (start_unit: User=, ProtectSystem=strict, ProtectHome=, PrivateTmp=,
# StateDirectory=, CacheDirectory=, Environment=, EnvironmentFile=,
# WorkingDirectory=, NoNewPrivileges= and an empty CapabilityBoundingSet=, read
# from the installed unit files), set up as docs/volunteer.md tells an operator,
# and one completion through the gateway's HTTP API; dpkg --purge.
# Prints one "key: value" line per fact; the test compares them.
set -e
DEB=$1
mount --make-rprivate /
t=$(mktemp -d)
mount -t tmpfs none "$t"
for d in etc usr var lib; do
    mkdir -p "$t/$d.up" "$t/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$t/$d.up,workdir=$t/$d.work" "/$d"
done
ip link set lo up
echo "overlays: yes"

dpkg -i "$DEB" >/dev/null
echo "status: $(dpkg-query -W -f '${Status}' swisd)"
echo "user: $(getent passwd swisd | cut -d: -f1,6,7)"
echo "state: $(stat -c '%U %a' /var/lib/swisd)"
echo "# edited" >> /etc/swisd/broker.env
dpkg -i --force-confold "$DEB" >/dev/null
echo "reinstall: $(dpkg-query -W -f '${Status}' swisd)"
echo "edit kept: $(tail -n 1 /etc/swisd/broker.env)"
cd /
rc=0
/usr/bin/swisd demo -n 8 >"$t/demo.out" 2>"$t/demo.err" || rc=$?
echo "demo: $rc $(grep -o 'model [^ ]*' "$t/demo.err") $(head -c 16 "$t/demo.out")"

# start_unit UNIT [COMMAND]: the unit's ExecStart (or COMMAND in its place), in
# the background, its output in $t/UNIT.log, its pid in $t/UNIT.pid
start_unit() {
    unit=/lib/systemd/system/$1.service
    key() { sed -n "s/^$1=//p" "$unit"; }
    cmd=${2:-$(key ExecStart)}
    [ "$(key ProtectSystem)" = strict ] && [ "$(key PrivateTmp)" = yes ] && [ "$(key ProtectHome)" = yes ] ||
        { echo "$1: not the sandbox this emulates" >&2; return 1; }
    xdg=$(key Environment | sed -n 's/^XDG_CONFIG_HOME=//p' | sed 's|%S|/var/lib|')
    workdir=$(key WorkingDirectory | sed 's|%S|/var/lib|')
    # StateDirectory= and CacheDirectory= (writable, owned by User=), the rest read-only
    # (ProtectSystem=strict), an empty /tmp (PrivateTmp=), no /home or /root (ProtectHome=)
    UNIT_USER=$(key User) UNIT_ENVFILE=$(key EnvironmentFile) UNIT_CMD=$cmd UNIT_XDG=$xdg UNIT_WD=$workdir \
    STATE=/var/lib/$(key StateDirectory) CACHE=/var/cache/$(key CacheDirectory) \
    unshare -m sh -ec '
        mount --make-rprivate /
        mount --bind "$STATE" "$STATE"
        mount --bind "$CACHE" "$CACHE"
        for m in / /etc /usr /var /lib; do mount -o remount,bind,ro "$m"; done
        mount -t tmpfs tmpfs /tmp
        mount -t tmpfs -o ro tmpfs /home
        mount -t tmpfs -o ro tmpfs /root
        cd "$UNIT_WD"
        exec setpriv --reuid="$UNIT_USER" --regid="$UNIT_USER" --init-groups --no-new-privs \
            --inh-caps=-all --bounding-set=-all env -i PATH=/usr/bin:/bin HOME="$STATE" XDG_CONFIG_HOME="$UNIT_XDG" \
            UNIT_ENVFILE="$UNIT_ENVFILE" UNIT_CMD="$UNIT_CMD" \
            sh -c "set -a; . \"\$UNIT_ENVFILE\"; set +a; eval \"exec \$UNIT_CMD\""
    ' >"$t/$1.log" 2>&1 &
    echo $! > "$t/$1.pid"
}
stop_unit() { kill "$(cat "$t/$1.pid")" 2>/dev/null || true; wait "$(cat "$t/$1.pid")" 2>/dev/null || true; }
wait_for() { # FILE TEXT SECONDS: until FILE holds TEXT
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1)); [ "$i" -le $(($3 * 10)) ] || return 1; sleep 0.1
    done
}

# the operator's steps (docs/volunteer.md, "The units"): the broker makes its key on its first
# start; its endpoint goes into bootstrap.txt; the gateway's key, made as the user swisd, into the
# broker's --gateways folder; the broker restarts to read it
start_unit swisd-broker
wait_for "$t/swisd-broker.log" "listening on" 20 || echo "broker log: $(tail -c 300 "$t/swisd-broker.log")"
bkey=$(setpriv --reuid=swisd --regid=swisd --init-groups env HOME=/var/lib/swisd \
    swisd keygen --show /var/lib/swisd/broker.key | sed -n 's/^public-key: //p')
echo "tcp://127.0.0.1:5555#$bkey" >> /etc/swisd/bootstrap.txt
setpriv --reuid=swisd --regid=swisd --init-groups env HOME=/var/lib/swisd \
    swisd keygen --out /var/lib/swisd/gateway.key >/dev/null
cp /var/lib/swisd/gateway.key /etc/swisd/gateways/
stop_unit swisd-broker
start_unit swisd-broker
wait_for "$t/swisd-broker.log" "listening on tcp://0.0.0.0:5555" 20 || true
# the model by URL (docs/volunteer.md, "Model shards and manifests"): the operator signs a manifest
# with the gateway's key, the gateway serves it beside the GGUF (--serve-model), and the volunteer
# is told where it is and which signer to trust
as_swisd() { setpriv --reuid=swisd --regid=swisd --init-groups env HOME=/var/lib/swisd "$@"; }
as_swisd mkdir -p /var/lib/swisd/models
as_swisd ln -sf /usr/share/swisd/models/stories260K.gguf /var/lib/swisd/models/stories260K.gguf
as_swisd swisd manifest /usr/share/swisd/models/stories260K.gguf --url http://127.0.0.1:8080/models/stories260K.gguf \
    --key /var/lib/swisd/gateway.key -o /var/lib/swisd/models/manifest.json >/dev/null
signer=$(as_swisd swisd manifest --show-signer --key /var/lib/swisd/gateway.key | sed -n 's/^signer: //p')
sed -i 's|^SWISD_GATEWAY_ARGS="\(.*\)"$|SWISD_GATEWAY_ARGS="\1 --serve-model /var/lib/swisd/models/manifest.json"|' \
    /etc/swisd/gateway.env
sed -i "s|^SWISD_VOLUNTEER_ARGS=\"\\(.*\\)\"\$|SWISD_VOLUNTEER_ARGS=\"\\1 --manifest http://127.0.0.1:8080/models/manifest.json --manifest-key $signer\"|" \
    /etc/swisd/volunteer.env
start_unit swisd-gateway
wait_for "$t/swisd-gateway.log" "http on port 8080" 20 || true
start_unit swisd-volunteer
echo "broker: $(grep -o 'listening on [^#]*' "$t/swisd-broker.log" | tail -n 1)"
echo "gateway: $(grep -o 'http on port [0-9]*' "$t/swisd-gateway.log")"
echo "key owner: $(stat -c '%U %a' /var/lib/swisd/broker.key_secret)"
i=0
while [ $i -lt 100 ]; do
    out=$(curl -s -m 10 http://127.0.0.1:8080/v1/completions -H 'Content-Type: application/json' \
        -d '{"prompt": "Once upon a time", "max_tokens": 100, "temperature": 0}' || true)
    case "$out" in *'"text"'*) break ;; esac
    i=$((i + 1)); sleep 0.3
done
printf "completion: %s\n" "$out" # printf: the JSON holds backslashes, which dash's echo would read
# after a generation went through the volunteer: every daemon has made its key by now
echo "keys: $(cd /var/lib/swisd && ls -- *.key | tr "\n" " ")"
echo "cache: $(cd /var/cache/swisd && find . -name '*.gguf' -printf '%u %s %P\n' | tr "\n" " ")"
echo "fetched: $(grep -o 'fetched layers [0-9-]* of [^:]*: [0-9]* bytes received' "$t/swisd-volunteer.log" | head -n 1)"
for u in swisd-volunteer swisd-gateway swisd-broker; do stop_unit $u; done
for u in swisd-broker swisd-gateway swisd-volunteer; do
    echo "$u log: $(tr '\n' ' ' < "$t/$u.log" | tail -c 400)"
done
rm -f /etc/swisd/gateways/gateway.key # the operator's own file: dpkg --purge leaves a folder holding one

dpkg --purge swisd >/dev/null 2>&1
echo "purged: $(dpkg-query -W -f '${Status}' swisd 2>/dev/null || echo none)"
echo "after purge: $(getent passwd swisd || echo no-user) $([ -e /var/lib/swisd ] || echo no-state) $([ -e /etc/swisd ] || echo no-etc)"
