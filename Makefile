# nszone: build, install, release.
#
#   make                        build/nszone (the Go toolchain's defaults), and the static
#                               build/nszone-zoneinit and build/nszone-enter
#   sudo make install           the binary, the zones' init in LIBEXECDIR/nszone, systemd
#                               units, completions, man pages and, unless one exists,
#                               /etc/nszone/zones.yaml
#   sudo make install ENTER=1   also nszone-enter, setuid root, in LIBEXECDIR/nszone: the
#                               users and groups a zone names then enter it without sudo
#                               (docs/security.md)
#   sudo make uninstall         all of that again (zones.yaml stays if it was edited)
#   make release                build/release/nszone: static (CGO_ENABLED=0), stripped
#   make deb, make rpm          build/nszone_*.deb, build/nszone-*.rpm (PREFIX=/usr; with
#                               ENTER=1 nszone-enter setuid root, else mode 0755)
#   make man docs               regenerate docs/man and the README's picture
#   make test                   scripts/test (as root, in a sandbox)
#
# PREFIX (/usr/local), DESTDIR, BINDIR, LIBEXECDIR, SYSCONFDIR (/etc), SYSTEMDUNITDIR,
# MANDIR, BUILDDIR (build) and GO can be set on the command line.

PREFIX         ?= /usr/local
BINDIR         ?= $(PREFIX)/bin
LIBEXECDIR     ?= $(PREFIX)/libexec
DATADIR        ?= $(PREFIX)/share
MANDIR         ?= $(DATADIR)/man
DOCDIR         ?= $(DATADIR)/doc/nszone
SYSCONFDIR     ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR    ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR     ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR    ?= $(DATADIR)/fish/vendor_completions.d
# NetworkManager's hook is installed only where NetworkManager is.
NMDIR          ?= $(SYSCONFDIR)/NetworkManager
BUILDDIR       ?= build
GO             ?= go

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

SOURCES := $(shell find . -name '*.go' -not -name '*_test.go' -not -path './e2e/*' -not -path './$(BUILDDIR)/*') go.mod go.sum
UNITS   := nszone.service nszone@.service
MANPAGES = $(notdir $(wildcard docs/man/*.1))

.PHONY: all build release completions units man docs install uninstall deb rpm pkgroot test lint clean

all: build

build: $(BUILDDIR)/nszone $(BUILDDIR)/nszone-zoneinit $(BUILDDIR)/nszone-enter

$(BUILDDIR)/nszone: $(SOURCES)
	@mkdir -p $(BUILDDIR)
	$(GO) build -buildvcs=false -ldflags '$(LDFLAGS)' -o $@ ./cmd/nszone

# The confined zones' init (nszone exec starts it as root): static, and small
# so that it starts fast; it links no user database, so no cgo either way.
$(BUILDDIR)/nszone-zoneinit: $(SOURCES)
	@mkdir -p $(BUILDDIR)
	CGO_ENABLED=0 $(GO) build -buildvcs=false -trimpath -ldflags '-s -w' -o $@ ./cmd/nszone-zoneinit

# The setuid helper is always static: no dynamic loader and no NSS module
# ever runs as root on a caller's behalf. (Not PIE: Go's PIE build, even
# without cgo, is dynamically linked and starts through ld.so.)
$(BUILDDIR)/nszone-enter: $(SOURCES)
	@mkdir -p $(BUILDDIR)
	CGO_ENABLED=0 $(GO) build -buildvcs=false -trimpath -ldflags '-s -w' -o $@ ./cmd/nszone-enter

# A static binary runs on any Linux of its architecture. It looks users up in
# /etc/passwd and /etc/group only (no NSS: LDAP, sssd or systemd-homed users
# are not found by exec --user or under sudo); `make` keeps the toolchain's
# default for that reason.
release:
	@mkdir -p $(BUILDDIR)/release
	CGO_ENABLED=0 $(GO) build -buildvcs=false -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(BUILDDIR)/release/nszone ./cmd/nszone
	@if command -v file >/dev/null 2>&1; then \
		file -L $(BUILDDIR)/release/nszone | grep -Eq 'statically linked|static-pie linked' || \
			{ echo "make release: $(BUILDDIR)/release/nszone is not static:"; file -L $(BUILDDIR)/release/nszone; exit 1; }; \
	fi
	@$(BUILDDIR)/release/nszone version

completions: $(BUILDDIR)/nszone
	@mkdir -p $(BUILDDIR)/completions
	$(BUILDDIR)/nszone completion bash > $(BUILDDIR)/completions/nszone
	$(BUILDDIR)/nszone completion zsh > $(BUILDDIR)/completions/_nszone
	$(BUILDDIR)/nszone completion fish > $(BUILDDIR)/completions/nszone.fish

# The units name the binary where install puts it.
units:
	@mkdir -p $(BUILDDIR)/systemd
	@for u in $(UNITS); do \
		sed 's|@BINDIR@|$(BINDIR)|g' dist/systemd/$$u.in > $(BUILDDIR)/systemd/$$u || exit 1; \
	done

# The generator lives in a test, so that it is not part of the binary.
man:
	$(GO) test ./cmd/nszone -run '^TestManPagesCurrent$$' -count=1 -update

docs: man
	$(GO) test ./graph -run '^TestGraphDocsCurrent$$' -count=1 -update

install: build completions units
	install -D -m 0755 $(BUILDDIR)/nszone $(DESTDIR)$(BINDIR)/nszone
	install -D -m 0755 $(BUILDDIR)/nszone-zoneinit $(DESTDIR)$(LIBEXECDIR)/nszone/nszone-zoneinit
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	for u in $(UNITS); do install -m 0644 $(BUILDDIR)/systemd/$$u $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; done
	install -D -m 0644 $(BUILDDIR)/completions/nszone $(DESTDIR)$(BASHCOMPDIR)/nszone
	install -D -m 0644 $(BUILDDIR)/completions/_nszone $(DESTDIR)$(ZSHCOMPDIR)/_nszone
	install -D -m 0644 $(BUILDDIR)/completions/nszone.fish $(DESTDIR)$(FISHCOMPDIR)/nszone.fish
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 0644 $(addprefix docs/man/,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man1/
	install -D -m 0644 dist/zones.example.yaml $(DESTDIR)$(DOCDIR)/zones.example.yaml
	@zones='$(DESTDIR)$(SYSCONFDIR)/nszone/zones.yaml'; \
	if [ -e "$$zones" ] || [ -L "$$zones" ]; then \
		echo "kept $$zones (it exists; the example is $(DOCDIR)/zones.example.yaml)"; \
	else \
		install -D -m 0644 dist/zones.example.yaml "$$zones" && echo "installed the example zones file as $$zones"; \
	fi
	@if [ -d '$(DESTDIR)$(NMDIR)' ]; then \
		install -D -m 0755 dist/networkmanager/90-nszone '$(DESTDIR)$(NMDIR)/dispatcher.d/90-nszone' && \
		echo "installed the NetworkManager hook $(NMDIR)/dispatcher.d/90-nszone"; \
	fi
	@if [ '$(ENTER)' = 1 ]; then \
		install -D -o root -g root -m 4755 $(BUILDDIR)/nszone-enter '$(DESTDIR)$(LIBEXECDIR)/nszone/nszone-enter' && \
		echo "installed $(LIBEXECDIR)/nszone/nszone-enter setuid root: users and groups named in a zone's users: and groups: enter it without sudo"; \
	fi
	@echo "next: systemctl daemon-reload && systemctl enable --now nszone.service"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/nszone $(DESTDIR)$(LIBEXECDIR)/nszone/nszone-zoneinit $(DESTDIR)$(LIBEXECDIR)/nszone/nszone-enter
	rmdir $(DESTDIR)$(LIBEXECDIR)/nszone 2>/dev/null || true
	for u in $(UNITS); do rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; done
	rm -f $(DESTDIR)$(BASHCOMPDIR)/nszone $(DESTDIR)$(ZSHCOMPDIR)/_nszone $(DESTDIR)$(FISHCOMPDIR)/nszone.fish
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(MANPAGES))
	rm -f $(DESTDIR)$(NMDIR)/dispatcher.d/90-nszone
	rm -f $(DESTDIR)$(DOCDIR)/zones.example.yaml
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	@zones='$(DESTDIR)$(SYSCONFDIR)/nszone/zones.yaml'; \
	if cmp -s dist/zones.example.yaml "$$zones"; then \
		rm -f "$$zones"; rmdir '$(DESTDIR)$(SYSCONFDIR)/nszone' 2>/dev/null || true; \
	elif [ -e "$$zones" ]; then \
		echo "kept $$zones (edited: remove it yourself)"; \
	fi
	@echo "if nszone.service was enabled: systemctl disable --now nszone.service; systemctl daemon-reload"

# Packages. nfpm runs pinned through the Go module proxy (go run ...@version):
# a build tool, so it stays out of go.mod and go.sum, and out of the
# dependencies of the binaries; no nfpm has to be installed. It needs the
# proxy (or a module cache that holds it) the first time.
NFPM       ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
PKGROOT    := $(abspath $(BUILDDIR))/pkgroot
# A Debian and RPM version starts with a digit and has no '-': v1.2.3-4-gabc
# becomes 1.2.3+4+gabc, an untagged abc1234-dirty 0~gitabc1234+dirty.
PKGVERSION ?= $(shell echo '$(VERSION)' | sed -E 's/-/+/g' | sed -E 's/^v?([0-9]+\.)/\1/; t; s/^/0~git/')
PKGARCH    ?= $(shell $(GO) env GOARCH)

# The package holds what make install PREFIX=/usr puts in place (a fresh
# DESTDIR, so the example is the zones file, and NetworkManager's directory,
# so the hook is there) and nszone-enter, whose mode the package keeps.
pkgroot: build
	rm -rf '$(PKGROOT)'
	mkdir -p '$(PKGROOT)/etc/NetworkManager'
	$(MAKE) --no-print-directory install DESTDIR='$(PKGROOT)' BUILDDIR='$(BUILDDIR)' GO='$(GO)' \
		VERSION='$(VERSION)' COMMIT='$(COMMIT)' ENTER= PREFIX=/usr BINDIR=/usr/bin \
		LIBEXECDIR=/usr/libexec DATADIR=/usr/share MANDIR=/usr/share/man \
		DOCDIR=/usr/share/doc/nszone SYSCONFDIR=/etc SYSTEMDUNITDIR=/usr/lib/systemd/system \
		BASHCOMPDIR=/usr/share/bash-completion/completions ZSHCOMPDIR=/usr/share/zsh/site-functions \
		FISHCOMPDIR=/usr/share/fish/vendor_completions.d NMDIR=/etc/NetworkManager >/dev/null
	install -D -m $(if $(filter 1,$(ENTER)),4755,0755) $(BUILDDIR)/nszone-enter '$(PKGROOT)/usr/libexec/nszone/nszone-enter'

deb rpm: pkgroot
	PKGROOT='$(PKGROOT)' PKGVERSION='$(PKGVERSION)' ARCH='$(PKGARCH)' \
		$(NFPM) package --config dist/package/nfpm.yaml --packager $@ --target '$(BUILDDIR)/'
	@if [ '$(ENTER)' != 1 ] && [ $@ = deb ]; then echo "nszone-enter is not setuid; to let the users and groups named in a zone enter it without sudo:"; \
		echo "  dpkg-statoverride --update --add root root 4755 /usr/libexec/nszone/nszone-enter  (or make $@ ENTER=1)"; fi

test:
	scripts/test

lint:
	scripts/lint

clean:
	rm -rf $(BUILDDIR)
