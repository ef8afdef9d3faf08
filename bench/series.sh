#!/bin/sh
# series.sh TRACK [MODEL] [OUTDIR] - the tables of docs/TIME_SERIES.md: the protocol of one
# track (daily or hourly), every task scored for the model (ancestral sampling and DDIM) and for
# every baseline, at 100 samples, each row printed with the task it belongs to. The windows,
# the samples and the scores go to OUTDIR (default runs/series-TRACK); a task whose samples are
# there already is not drawn again, so an interrupted run resumes.
# Environment: DIFFUSE (the binary, default build/diffuse), SAMPLES (100), SAMPLERS (the model
# rows, default "ddpm:50 ddim:10"; KIND:STEPS[:VARIANCE], e.g. ddpm:50:beta), TASKS (a subset of the track's task names),
# BLOCK (forecast tasks drawn --block BLOCK steps at a time; their rows and files get "-bBLOCK";
# default: one pass); OMP_NUM_THREADS.
#
#   daily   seattle-weather temp_max,temp_min, trained to 2014-12-31:
#           f7     a 56-day context, the next 7 days, origins every day 2015-01-01..2015-12-25
#           r10    13 non-overlapping 28-day windows from 2015-01-01, 10% of entries hidden
#           r50    the same, 50% hidden
#           gap7   the same, one 7-day gap per feature
#   hourly  seattle-temps+sf-temps, trained to 2010-10-31:
#           f24    a 168 h context, the next 24 h, origins daily at 00:00 from 2010-11-01
#           f72    the same, the next 72 h
#           r10    30 non-overlapping 48 h windows from 2010-11-01, 10% hidden
#           r50    the same, 50% hidden
#           gap12  the same, one 12 h gap per feature
set -u
TRACK=${1:?usage: bench/series.sh daily|hourly [MODEL] [OUTDIR]}
D=${DIFFUSE:-build/diffuse}
S=${SAMPLES:-100}
SAMPLERS=${SAMPLERS:-"ddpm:50 ddim:10"}
BLOCK=${BLOCK:-}
case $BLOCK in '' | *[!0-9]* | 0) [ -z "$BLOCK" ] || { echo "series.sh: BLOCK must be a positive integer, not '$BLOCK'" >&2; exit 2; } ;; esac
case $TRACK in
daily)
    MODEL=${2:-models/weather-daily.safetensors}
    DATA="--data seattle-weather --columns temp_max,temp_min"; UNTIL=2014-12-31
    ALL="f7 r10 r50 gap7" ;;
hourly)
    MODEL=${2:-models/weather-hourly.safetensors}
    DATA="--data seattle-temps+sf-temps --columns temp"; UNTIL=2010-10-31
    ALL="f24 f72 r10 r50 gap12" ;;
*) echo "series.sh: the track is daily or hourly, not '$TRACK'" >&2; exit 2 ;;
esac
OUT=${3:-runs/series-$TRACK}
TASKS=${TASKS:-$ALL}
mkdir -p "$OUT" || exit 1

task_opts() {
    case $TRACK:$1 in
    daily:f7) echo "--from 2015-01-01 --to 2015-12-25 --context 56 --horizon 7" ;;
    daily:r10) echo "--from 2015-01-01 --length 28 --windows 13 --hide random:0.1" ;;
    daily:r50) echo "--from 2015-01-01 --length 28 --windows 13 --hide random:0.5" ;;
    daily:gap7) echo "--from 2015-01-01 --length 28 --windows 13 --hide gap:7" ;;
    hourly:f24) echo "--from 2010-11-01 --to 2010-12-31 --every 24 --context 168 --horizon 24" ;;
    hourly:f72) echo "--from 2010-11-01 --to 2010-12-29 --every 24 --context 168 --horizon 72" ;;
    hourly:r10) echo "--from 2010-11-01 --length 48 --windows 30 --hide random:0.1" ;;
    hourly:r50) echo "--from 2010-11-01 --length 48 --windows 30 --hide random:0.5" ;;
    hourly:gap12) echo "--from 2010-11-01 --length 48 --windows 30 --hide gap:12" ;;
    *) echo "series.sh: no task '$1' in the $TRACK track ($ALL)" >&2; exit 2 ;;
    esac
}

for t in $TASKS; do
    opts=$(task_opts "$t") || exit 2
    w="$OUT/$t"
    echo "== $TRACK $t: diffuse series windows $DATA $opts"
    $D series windows $DATA $opts --out "$w" || exit 1
    case $t in f*) forecast=1 ;; *) forecast=0 ;; esac
    for s in $SAMPLERS; do
        kind=${s%%:*}; rest=${s#*:}; steps=${rest%%:*}; var=""; vopt=""
        case $rest in *:*) var=${rest#*:}; vopt="--variance $var" ;; esac
        b=""
        [ $forecast = 1 ] && [ -n "$BLOCK" ] && b="-b$BLOCK"
        f="$w-$kind$steps${var:+-$var}$b.npy"
        if [ ! -s "$f" ]; then
            start=$(date +%s)
            if [ $forecast = 1 ]; then
                h=$(echo "$opts" | sed 's/.*--horizon \([0-9]*\).*/\1/')
                $D series forecast --model "$MODEL" --context "$w-context.npy" --horizon "$h" --samples "$S" \
                    --sampler "$kind" --steps "$steps" $vopt ${b:+--block $BLOCK} --out "$f" 2>"$f.log" || { cat "$f.log"; exit 1; }
            else
                $D series impute --model "$MODEL" --values "$w-values.npy" --samples "$S" \
                    --sampler "$kind" --steps "$steps" $vopt --out "$f" 2>"$f.log" || { cat "$f.log"; exit 1; }
            fi
            echo "   $kind $steps steps: $(( $(date +%s) - start )) s (diffuse series $([ $forecast = 1 ] && echo forecast || echo impute) --model $MODEL ... --sampler $kind --steps $steps ${vopt:+$vopt }${b:+--block $BLOCK }--samples $S)"
        fi
        mask=""
        [ $forecast = 0 ] && mask="--mask $w-mask.npy"
        $D series eval --samples "$f" --truth "$w-truth.npy" $mask | sed "s|^$f |model $kind-$steps${var:+-$var}$b|"
    done
    echo "   baselines: diffuse series baselines $DATA --until $UNTIL $opts --samples $S"
    $D series baselines $DATA --until $UNTIL $opts --samples "$S" 2>/dev/null | tail -n +2
done
