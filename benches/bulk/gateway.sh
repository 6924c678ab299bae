# Sourced by the bulk benchmarks, with `here` set to the checkout: sets `gw` to $GATEWAY (to
# measure another build, for A/B runs), or else to this checkout's release build, built first.
if [ -n "${GATEWAY:-}" ]; then
    gw=$(realpath "$GATEWAY")
else
    (cd "$here" && cargo build --release --quiet)
    gw="$here/target/release/iop-gateway"
fi
