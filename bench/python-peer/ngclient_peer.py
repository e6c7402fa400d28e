"""python-tuf's ngclient as a peer in Airlock's updater benchmark (bench/README.md).

    ngclient_peer.py cold --root ROOT --metadata-dir D --metadata-url U --targets-url T
                          --target-dir O --target NAME
    ngclient_peer.py warm --root ROOT --metadata-dir D --metadata-url U --targets-url T

cold: trust ROOT (passed as `bootstrap`, which ngclient stores in D), refresh, look up
NAME and download it into O. warm: refresh with the metadata a cold run left in D.
The server's CA comes from SSL_CERT_FILE (urllib3 loads OpenSSL's default verify paths, which
honour that variable). Exit 0 only on success.
"""

import argparse
import os
import sys
import traceback

from tuf.ngclient import Updater


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["cold", "warm"])
    p.add_argument("--root", required=True)
    p.add_argument("--metadata-dir", required=True)
    p.add_argument("--metadata-url", required=True)
    p.add_argument("--targets-url", required=True)
    p.add_argument("--target-dir")
    p.add_argument("--target")
    p.add_argument("--ca")  # the CA comes from SSL_CERT_FILE; accepted for a uniform contract
    a = p.parse_args()

    os.makedirs(a.metadata_dir, exist_ok=True)
    # cold: the trusted root is the bootstrap; warm: explicitly use the root stored in D.
    bootstrap = None
    if a.mode == "cold":
        with open(a.root, "rb") as f:
            bootstrap = f.read()
    target_dir = a.target_dir or a.metadata_dir
    os.makedirs(target_dir, exist_ok=True)
    updater = Updater(
        metadata_dir=a.metadata_dir,
        metadata_base_url=a.metadata_url,
        target_dir=target_dir,
        target_base_url=a.targets_url,
        bootstrap=bootstrap,
    )
    updater.refresh()
    if a.mode == "cold":
        info = updater.get_targetinfo(a.target)
        if info is None:
            print(f"error: target {a.target!r} not found", file=sys.stderr)
            return 1
        updater.download_target(info)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # report the peer's own error text, exit 1
        traceback.print_exc()
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
