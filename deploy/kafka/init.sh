#!/usr/bin/env bash
# The worker's SCRAM user and ACLs (docker compose's kafka-init service; safe to run again).
#
# The worker reads and writes every voxflow.* topic, creates them (`voxflow topics --create`, the worker's
# start) and commits its consumer group's offsets (VOXFLOW_CONSUMER_GROUP, voxflow-worker by default).
set -euo pipefail
: "${VOXFLOW_WORKER_KAFKA_PASSWORD:?set VOXFLOW_WORKER_KAFKA_PASSWORD}"
WORKER=User:voxflow-worker
WORKER_GROUP="${VOXFLOW_CONSUMER_GROUP:-voxflow-worker}"
source "$(dirname "$0")/admin-login.sh"

until /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$ADMIN_CONFIG" --list \
    >/dev/null 2>&1; do
  sleep 2  # the broker is still starting
done

kafka_configs --alter --entity-type users --entity-name voxflow-worker \
  --add-config "SCRAM-SHA-512=[iterations=8192,password=${VOXFLOW_WORKER_KAFKA_PASSWORD}]"
kafka_acls --add --allow-principal "$WORKER" --resource-pattern-type prefixed --topic voxflow. \
  --operation Read --operation Write --operation Describe --operation Create
kafka_acls --add --allow-principal "$WORKER" --group "$WORKER_GROUP" --operation Read --operation Describe
