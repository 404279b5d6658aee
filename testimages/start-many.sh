#!/bin/sh
# Starts N idle test containers (kelpie-test/tool sleep), labelled kelpie-test=1 kelpie-bench=1, half of them
# with ECS task labels, for measuring the container collector. Remove them with: testimages/start-many.sh 0
set -eu
n=${1:?usage: start-many.sh N   (0 removes the bench containers)}
here=$(cd "$(dirname "$0")" && pwd)
ids=$(docker ps -aq --filter label=kelpie-bench=1)
[ -n "$ids" ] && docker rm -f $ids >/dev/null
[ "$n" -eq 0 ] && exit 0
sh "$here/build.sh"
i=0
while [ "$i" -lt "$n" ]; do
    if [ $((i % 2)) -eq 0 ]; then
        docker run -d --label kelpie-test=1 --label kelpie-bench=1 \
            --label com.amazonaws.ecs.task-definition-family=bench-svc \
            --label com.amazonaws.ecs.task-definition-version=7 \
            --label com.amazonaws.ecs.container-name=app \
            --label "com.amazonaws.ecs.task-arn=arn:aws:ecs:us-east-1:123456789012:task/bench/$i" \
            kelpie-test/tool:latest sleep >/dev/null
    else
        docker run -d --label kelpie-test=1 --label kelpie-bench=1 kelpie-test/tool:latest sleep >/dev/null
    fi
    i=$((i + 1))
done
echo "$n bench containers running"
