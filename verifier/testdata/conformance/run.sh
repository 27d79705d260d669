#!/usr/bin/env bash
# Runs the sigstore-conformance bundle-verify cases through the suite's CLI
# protocol (docs/cli_protocol.md of sigstore-conformance):
#   ENTRYPOINT verify-bundle --bundle F (--certificate-identity I --certificate-oidc-issuer U | --key K)
#              [--trusted-root T] FILE_OR_DIGEST
# A case directory ending in _fail must be rejected (non-zero exit), any other
# accepted. Cases without their own trusted_root.json use public-good.json.
# usage: run.sh [ENTRYPOINT...]   (default: bin/signgate verify-bundle)
# In signgate: `make conformance` from the repository root.
here=$(cd "$(dirname "$0")" && pwd)
C="$here/test/assets/bundle-verify"; PG="$here/public-good.json"
[ $# -gt 0 ] && cmd=("$@") || cmd=(bin/signgate verify-bundle)
ok=0; bad=0; fails=()
for d in "$C"/*/; do
  n=$(basename "$d")
  art="$C/a.txt"; [ -f "$d/artifact" ] && art="$d/artifact"
  tr="$PG"; [ -f "$d/trusted_root.json" ] && tr="$d/trusted_root.json"
  if [ -f "$d/key.pub" ]; then who=(--key "$d/key.pub"); else
    id="https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
    iss="https://token.actions.githubusercontent.com"
    [ -f "$d/identity" ] && id=$(cat "$d/identity"); [ -f "$d/issuer" ] && iss=$(cat "$d/issuer")
    who=(--certificate-identity "$id" --certificate-oidc-issuer "$iss")
  fi
  timeout 60 "${cmd[@]}" --bundle "$d/bundle.sigstore.json" "${who[@]}" --trusted-root "$tr" "$art" >/dev/null 2>&1; rc=$?
  case "$n" in *_fail) want=fail;; *) want=pass;; esac
  got=pass; [ $rc -ne 0 ] && got=fail
  if [ "$got" = "$want" ]; then ok=$((ok+1)); else bad=$((bad+1)); fails+=("$n(rc=$rc)"); fi
done
[ "$bad" -gt 0 ] && echo "wrong: ${fails[*]}"
echo "$ok of $((ok+bad)) sigstore-conformance verify-bundle cases right"
[ "$bad" = 0 ]
