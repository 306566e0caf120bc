#!/usr/bin/env bash
# ACLs of one tenant's principal (User:tenant-TENANT): it may write the request topics its app produces to
# and read the result and dead-letter topics its client follows (without a consumer group), nothing else.
# Its SCRAM user comes from `voxflow tenant add TENANT` run with the admin's login, or give its password
# as the second argument to create it here.
#   docker compose run --rm --entrypoint /deploy/kafka/add-tenant.sh kafka-init TENANT [PASSWORD]
set -euo pipefail
TENANT="${1:?usage: add-tenant.sh TENANT [PASSWORD]}"
PRINCIPAL="User:tenant-${TENANT}"
source "$(dirname "$0")/admin-login.sh"

if [[ -n "${2:-}" ]]; then
  kafka_configs --alter --entity-type users --entity-name "tenant-${TENANT}" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=${2}]"
fi
# voxflow/envelopes.py TOPIC_OF: where each upstream event goes
kafka_acls --add --allow-principal "$PRINCIPAL" --operation Write --operation Describe \
  --topic voxflow.ingest --topic voxflow.consent --topic voxflow.adaptation --topic voxflow.synthesis \
  --topic voxflow.erasure --topic voxflow.dubbing --topic voxflow.analysis
kafka_acls --add --allow-principal "$PRINCIPAL" --operation Read --operation Describe \
  --topic voxflow.results --topic voxflow.deadletter
