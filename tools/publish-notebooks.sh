#!/usr/bin/env bash
# Publish the converted chapters where Binder and Colab open them: force-push a
# branch (default "notebooks") whose tree is this commit's files plus every
# chapter's plain notebook, built by `make book` into _build/html/_sources and
# placed beside its source (book/<part>/<page>.ipynb). Binder builds the same
# environment from that branch (binder/); Colab opens the notebooks from it. The
# site's launch buttons point there (book/_ext/dlbook_notebooks.py).
#
#     tools/publish-notebooks.sh [remote] [branch]     # after `make book`
#
# The commit is made with a scratch index: the checkout, its index and its
# branches are left as they were.
set -euo pipefail
remote="${1:-origin}"
branch="${2:-notebooks}"
cd "$(dirname "$0")/.."
sources=_build/html/_sources
[ -d "$sources/book" ] || { echo "no converted notebooks in $sources/book: run make book first" >&2; exit 1; }
commit="$(git rev-parse HEAD)"
index="$(mktemp)"
trap 'rm -f "$index"' EXIT
export GIT_INDEX_FILE="$index"
git read-tree "$commit"
count=0
while IFS= read -r -d '' notebook; do
  blob="$(git hash-object -w -- "$notebook")"
  git update-index --add --cacheinfo "100644,$blob,${notebook#"$sources"/}"
  count=$((count + 1))
done < <(find "$sources/book" -name '*.ipynb' -print0 | sort -z)
tree="$(git write-tree)"
published="$(git -c user.name="dlbook build" -c user.email="build@dlbook.invalid" \
  commit-tree "$tree" -m "Chapters as notebooks, converted from $commit")"
git push --quiet --force "$remote" "$published:refs/heads/$branch"
echo "published $count notebooks of $commit to $remote $branch ($published)"
