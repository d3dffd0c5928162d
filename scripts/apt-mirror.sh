# Sourced by scripts/debian-root.sh: which Debian mirror to build a tree from,
# taken from this machine's own apt sources so the lab follows the user's
# mirror settings and names no host itself.
#
# apt_mirror RELEASE: print the URI of the apt source that serves RELEASE
# (e.g. trixie, trixie-security).  apt itself parses the sources (deb822
# *.sources and one-line *.list, `Enabled: no` honoured).  A machine usually
# lists only its own suite; the archive that serves it serves the others
# too, so when no source names RELEASE the one of this machine's own suite is
# used (bookworm's mirror for trixie, bookworm-security's for
# trixie-security).  Fails, saying what to configure, when neither exists.

# "RELEASE URI" for every deb source apt knows, whether or not it was fetched.
_apt_sources() {
	apt-get indextargets --no-release-info 'Created-By: Packages' \
		--format '$(RELEASE) $(REPO_URI)' 2>/dev/null | sort -u
}

apt_mirror() {
	local release=$1 own suffix uri
	uri=$(_apt_sources | awk -v r="$release" '$1 == r { print $2; exit }')
	if [ -z "$uri" ]; then
		own=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
		suffix=${release#"${release%%-*}"}   # -security, -updates or empty
		[ -n "$own" ] && uri=$(_apt_sources | awk -v r="$own$suffix" '$1 == r { print $2; exit }')
	fi
	if [ -z "$uri" ]; then
		echo "no apt source for '$release'${own:+ or '$own$suffix'} in this machine's apt configuration" \
			"(/etc/apt/sources.list, /etc/apt/sources.list.d/): add one, or set" \
			"LAB_DEBIAN_MIRROR / LAB_DEBIAN_SECURITY_MIRROR" >&2
		return 1
	fi
	echo "${uri%/}"
}
