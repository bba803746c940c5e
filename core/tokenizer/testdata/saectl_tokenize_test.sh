#!/usr/bin/env bash
# saectl tokenize / detokenize on the real GPT-2 files (DefaultTokenizerDir()).
# Usage: saectl_tokenize_test.sh PATH/TO/saectl
set -u
saectl="$1"
failures=0

expect() {  # expect NAME EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL $1: expected [$2], got [$3]" >&2
    failures=$((failures + 1))
  fi
}

ids=$("$saectl" tokenize --text "Hello world" -o ids)
expect "tokenize --text 'Hello world' -o ids" "15496,995" "$ids"
if [ "$ids" != "15496,995" ]; then
  echo "(are the GPT-2 files installed? run scripts/fetch-assets.sh)" >&2
fi

expect "tokenize -o json" "[15496,995]" "$("$saectl" tokenize --text "Hello world" -o json)"
expect "detokenize" "Hello world" "$("$saectl" detokenize --tokens 15496,995)"
expect "detokenize of a JSON array" "Hello world" "$("$saectl" detokenize --tokens '[15496, 995]')"

# --file, and the exact bytes back, invalid UTF-8 and the end-of-text marker included.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'caf\xc3\xa9 \xff\xfe<|endoftext|>\n\n  x ' > "$tmp/in.txt"
file_ids=$("$saectl" tokenize --file "$tmp/in.txt")
"$saectl" detokenize --tokens "$file_ids" > "$tmp/out.txt"
if ! cmp -s "$tmp/in.txt" "$tmp/out.txt"; then
  echo "FAIL tokenize --file then detokenize does not give the file back (ids $file_ids)" >&2
  failures=$((failures + 1))
fi
case ",$file_ids," in *,50256,*) ;; *)
  echo "FAIL <|endoftext|> in the file is not the token 50256 (ids $file_ids)" >&2
  failures=$((failures + 1)) ;;
esac

# A user's mistakes exit with 2 and say what is wrong.
expect_usage_error() {  # expect_usage_error NAME MESSAGE_PART ARGS...
  local name="$1" part="$2"
  shift 2
  local err code
  err=$("$saectl" "$@" 2>&1 >/dev/null)
  code=$?
  expect "$name exit code" 2 "$code"
  case "$err" in *"$part"*) ;; *)
    echo "FAIL $name: stderr [$err] lacks [$part]" >&2
    failures=$((failures + 1)) ;;
  esac
}
expect_usage_error "id outside the vocabulary" "50257" detokenize --tokens 15496,50257
expect_usage_error "not an id" "'x'" detokenize --tokens 1,x
expect_usage_error "missing tokenizer folder" "vocab.json" tokenize --tokenizer "$tmp/none" --text a
expect_usage_error "neither --text nor --file" "--text" tokenize
expect_usage_error "missing --file" "$tmp/missing.txt" tokenize --file "$tmp/missing.txt"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "saectl tokenize/detokenize: all checks passed"
