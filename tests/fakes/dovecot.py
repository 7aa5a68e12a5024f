"""A real Dovecot IMAP server on 127.0.0.1, configured from scratch for one test run.

``with Dovecot(tmp_path) as imap:`` writes its own dovecot.conf (nothing is read from
/etc/dovecot), a CA and a server certificate for 127.0.0.1/localhost, and a passwd-file
with the users; runs ``dovecot -F`` with a plain IMAP port (for ``?tls=none`` URLs) and an
IMAPS port; and stops it and removes its files on exit. The helpers (``deliver``, ``uids``,
``uidvalidity``, ``flags``, ``recreate_mailbox``) talk stdlib imaplib over the plain port.

Dovecot refuses to run its login processes or to access mail as root, so as root the login
processes run as ``dovenull`` (or ``nobody``) in their chroot and mail is stored as
``nobody``; run as another user, every process runs as that user. Unix sockets and the
mail live in a short private directory under the system temp dir (socket paths are limited
to 108 bytes and the unprivileged mail user must be able to reach them); the
configuration, certificates and log go to ``directory/dovecot`` when a directory is given.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from email import policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

DEFAULT_USER = "beta-feedback"
DEFAULT_PASSWORD = "beta-feedback-pw"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

_INSTALL_HINT = "install it with `apt-get install dovecot-imapd`"
_SAFE_USER = re.compile(r"[A-Za-z0-9._@+-]+")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_FLAGS = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)")


def _binary(name: str) -> str:
    # dovecot is in /usr/sbin, which is not on an ordinary user's PATH.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/usr/bin")
    if found is None:
        raise RuntimeError(f"{name} is not installed: the IMAP tests need Dovecot; {_INSTALL_HINT}")
    return found


def _free_port(taken: Iterable[int] = ()) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port


def _quote_mailbox(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(result: tuple[str, list[Any]], what: str) -> None:
    status, data = result
    if status != "OK":
        raise RuntimeError(f"IMAP {what} failed: {status} {data!r}")


class Dovecot:
    """A throwaway Dovecot: ``host``, ``port`` (plain), ``ssl_port``, ``cafile``, ``url()``."""

    host = "127.0.0.1"

    def __init__(
        self,
        directory: Path | str | None = None,
        users: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.dovecot = _binary("dovecot")
        self.doveadm = _binary("doveadm")
        self.openssl = _binary("openssl")
        self.users = dict(users) if users else {DEFAULT_USER: DEFAULT_PASSWORD}
        for name, password in self.users.items():
            if not _SAFE_USER.fullmatch(name):
                raise ValueError(f"user name {name!r} must match {_SAFE_USER.pattern}")
            if not password or any(c in password for c in ":\r\n\0"):
                raise ValueError(f"password of {name!r} must be non-empty, without ':' or newlines")
        self.user, self.password = next(iter(self.users.items()))
        self.start_timeout = start_timeout
        self._directory = Path(directory) if directory is not None else None
        self.port = _free_port()
        self.ssl_port = _free_port({self.port})
        self._process: subprocess.Popen[bytes] | None = None
        self._private: Path | None = None
        # Set by start(); the paths are meaningless before it.
        self.root = Path()
        self.config = Path()
        self.cafile = Path()
        self.certfile = Path()
        self.keyfile = Path()
        self.passwd = Path()
        self.log = Path()

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configuration, start Dovecot and wait until both ports greet."""
        if self._process is not None:
            raise RuntimeError("Dovecot is already running")
        self._private = Path(tempfile.mkdtemp(prefix="dovecot-"))
        # Only traversable for others: the unprivileged mail and login users need the sockets
        # and the maildirs below it; secrets below it are 0600.
        self._private.chmod(0o711)
        if self._directory is None:
            self.root = self._private
        else:
            self.root = self._directory / "dovecot"
            self.root.mkdir(parents=True, exist_ok=True)
        self.config = self.root / "dovecot.conf"
        self.log = self.root / "dovecot.log"
        try:
            self._make_certificates()
            self._make_users()
            for attempt in range(3):
                self._write_config()
                try:
                    self._launch()
                    return
                except _PortTaken:
                    if attempt == 2:
                        raise
                    self.port = _free_port()
                    self.ssl_port = _free_port({self.port})
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate Dovecot (kill it after a timeout) and remove the private directory."""
        process, self._process = self._process, None
        if process is not None:
            _terminate(process)
        private, self._private = self._private, None
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)

    def _launch(self) -> None:
        self.log.unlink(missing_ok=True)  # so that a retry is judged on its own lines only
        stderr = (self.root / "dovecot.stderr").open("wb")
        with stderr:
            self._process = subprocess.Popen(
                [self.dovecot, "-F", "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        deadline = time.monotonic() + self.start_timeout
        waiting = [(self.port, False), (self.ssl_port, True)]
        while waiting:
            port, tls = waiting[0]
            if self._process.poll() is not None:
                self._process = None
                text = self._diagnostics()
                if "Address already in use" in text:
                    raise _PortTaken(text)
                raise RuntimeError(f"dovecot exited while starting up:\n{text}")
            if time.monotonic() > deadline:
                process, self._process = self._process, None
                _terminate(process)
                raise RuntimeError(
                    f"dovecot did not greet on 127.0.0.1:{port} within {self.start_timeout} s:\n"
                    f"{self._diagnostics()}"
                )
            if self._greets(port, tls):
                waiting.pop(0)
            else:
                time.sleep(0.05)

    def _greets(self, port: int, tls: bool) -> bool:
        """True once the port answers with an IMAP greeting (sent only when auth is ready)."""
        try:
            with socket.create_connection((self.host, port), timeout=2) as raw:
                sock: socket.socket = raw
                if tls:
                    sock = self.ssl_context().wrap_socket(raw, server_hostname=self.host)
                with sock:
                    return sock.recv(1024).startswith(b"* OK")
        except ssl.SSLCertVerificationError:
            raise  # a certificate that does not verify will not mend itself: fail at once
        except OSError:
            return False

    def _diagnostics(self) -> str:
        parts = [f"configuration: {self.config}"]
        for path in (self.root / "dovecot.stderr", self.log):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(parts)

    # -- configuration ---------------------------------------------------------------------

    def _make_certificates(self) -> None:
        """A throwaway CA and a server certificate it signed, for 127.0.0.1 and localhost."""
        self.cafile = self.root / "ca.pem"
        self.certfile = self.root / "server.pem"
        self.keyfile = self.root / "server.key"
        ca_key = self.root / "ca.key"
        common = ["-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        self._openssl(
            "req", "-x509", *common, "-days", "2",
            "-keyout", str(ca_key), "-out", str(self.cafile),
            "-subj", "/CN=receiver tests Dovecot CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        self._openssl(
            "req", "-x509", *common, "-days", "2",
            "-CA", str(self.cafile), "-CAkey", str(ca_key),
            "-keyout", str(self.keyfile), "-out", str(self.certfile),
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature",
            "-addext", "extendedKeyUsage=serverAuth",
        )  # fmt: skip
        ca_key.unlink()
        self.keyfile.chmod(0o600)

    def _openssl(self, *args: str) -> None:
        done = subprocess.run([self.openssl, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed:\n{done.stderr}")

    def _make_users(self) -> None:
        assert self._private is not None
        mail = self._private / "mail"
        mail.mkdir()
        uid, gid = self._mail_ids()
        lines = []
        for name, password in self.users.items():
            home = mail / name
            home.mkdir(mode=0o700)
            os.chown(home, uid, gid)
            # user:password:uid:gid:gecos:home:shell:extra — uid/gid come from mail_uid/gid.
            lines.append(f"{name}:{{PLAIN}}{password}::::{home}::\n")
        self.passwd = self.root / "passwd"
        self.passwd.touch(mode=0o600)
        self.passwd.write_text("".join(lines))

    @staticmethod
    def _mail_ids() -> tuple[int, int]:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            return nobody.pw_uid, nobody.pw_gid
        return os.geteuid(), os.getegid()

    def _write_config(self) -> None:
        assert self._private is not None
        run, state = self._private / "run", self._private / "state"
        state.mkdir(exist_ok=True)
        me = pwd.getpwuid(os.geteuid()).pw_name
        my_group = grp.getgrgid(os.getegid()).gr_name
        mail_uid, mail_gid = self._mail_ids()
        if os.geteuid() == 0:
            # Dovecot refuses root for login processes and mail access (not configurable);
            # the internal processes (auth reads our 0600 passwd-file) may stay root.
            login_user = _first_user("dovenull", "nobody")
            chroots = ""  # keep Dovecot's chroots: login processes reach sockets through them
        else:
            login_user = me
            chroots = "".join(
                f"service {name} {{\n  chroot =\n}}\n"
                for name in ("anvil", "imap-login", "imap-urlauth-login")
            )
        self.config.write_text(
            f"""\
# Throwaway Dovecot for the test suite (tests/fakes/dovecot.py); includes nothing from /etc.
protocols = imap
listen = {self.host}
base_dir = {run}
state_dir = {state}
instance_name = dovecot-tests-{self.port}
log_path = {self.log}
info_log_path = {self.log}
debug_log_path = {self.log}

default_internal_user = {me}
default_internal_group = {my_group}
default_login_user = {login_user}
mail_uid = {mail_uid}
mail_gid = {mail_gid}
first_valid_uid = {min(mail_uid, 500)}
# INBOX in a directory of its own, so that recreate_mailbox("INBOX") can remove it.
mail_location = maildir:~/Maildir:INBOX=~/inbox
mail_fsync = never

disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = {self.passwd}
}}
userdb {{
  driver = passwd-file
  args = {self.passwd}
}}

ssl = yes
ssl_cert = <{self.certfile}
ssl_key = <{self.keyfile}
ssl_min_protocol = TLSv1.2

protocol imap {{
  mail_max_userip_connections = 100
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.ssl_port}
    ssl = yes
  }}
}}
service anvil {{
  # no growing delay after failed logins: tests try wrong passwords on purpose
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{chroots}"""
        )

    # -- for clients -----------------------------------------------------------------------

    def url(self, tls: bool = True, mailbox: str = "INBOX", user: str | None = None) -> str:
        """``imaps://user:pw@127.0.0.1:SSL_PORT/INBOX`` or ``imap://…:PORT/INBOX?tls=none``."""
        name = user or self.user
        credentials = f"{quote(name, safe='')}:{quote(self.users[name], safe='')}"
        path = quote(mailbox, safe="")
        if tls:
            return f"imaps://{credentials}@{self.host}:{self.ssl_port}/{path}"
        return f"imap://{credentials}@{self.host}:{self.port}/{path}?tls=none"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's CA (or set SSL_CERT_FILE to ``cafile``)."""
        return ssl.create_default_context(cafile=str(self.cafile))

    @contextlib.contextmanager
    def client(self, user: str | None = None) -> Iterator[imaplib.IMAP4]:
        """A logged-in stdlib imaplib client over the plain port."""
        name = user or self.user
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            _check(imap.login(name, self.users[name]), "LOGIN")
            yield imap
        finally:
            try:
                imap.logout()
            except (imaplib.IMAP4.error, OSError):  # e.g. kicked: logout() leaves the socket open
                with contextlib.suppress(OSError):
                    imap.shutdown()

    # -- helpers for tests -----------------------------------------------------------------

    def deliver(
        self,
        message: bytes | EmailMessage,
        mailbox: str = "INBOX",
        *,
        flags: Iterable[str] = (),
        user: str | None = None,
    ) -> int:
        """APPEND a message (creating the mailbox if need be) and return its UID."""
        raw = message.as_bytes(policy=policy.SMTP) if isinstance(message, EmailMessage) else message
        flag_list = "(" + " ".join(flags) + ")" if flags else None
        with self.client(user) as imap:
            if mailbox.upper() != "INBOX":
                imap.create(_quote_mailbox(mailbox))  # NO when it already exists: fine
            status, data = imap.append(_quote_mailbox(mailbox), flag_list, None, raw)
            _check((status, data), f"APPEND to {mailbox}")
            for line in data:
                found = _APPENDUID.search(line or b"")
                if found:
                    return int(found.group(2))
            return max(self._search(imap, mailbox))

    def uids(self, mailbox: str = "INBOX", *, user: str | None = None) -> list[int]:
        """The UIDs in a mailbox, ascending (the mailbox is EXAMINEd: flags stay as they are)."""
        with self.client(user) as imap:
            return self._search(imap, mailbox)

    def uidvalidity(self, mailbox: str = "INBOX", *, user: str | None = None) -> int:
        with self.client(user) as imap:
            status, data = imap.status(_quote_mailbox(mailbox), "(UIDVALIDITY)")
            _check((status, data), f"STATUS {mailbox}")
            found = _UIDVALIDITY.search(data[0] or b"")
            assert found, data
            return int(found.group(1))

    def flags(self, uid: int, mailbox: str = "INBOX", *, user: str | None = None) -> set[str]:
        """The flags of one message, e.g. ``{"\\\\Seen"}`` (without the per-session ``\\Recent``).

        KeyError if the mailbox has no message with that UID.
        """
        with self.client(user) as imap:
            _check(imap.select(_quote_mailbox(mailbox), readonly=True), f"EXAMINE {mailbox}")
            status, data = imap.uid("FETCH", str(uid), "(FLAGS)")
            _check((status, data), f"UID FETCH {uid}")
            for line in data:
                found = _FETCH_FLAGS.search(line if isinstance(line, bytes) else b"")
                if found and int(found.group(1) or found.group(4)) == uid:
                    flags = (found.group(2) or found.group(3) or b"").decode().split()
                    return {flag for flag in flags if flag != "\\Recent"}
            raise KeyError(f"no message with UID {uid} in {mailbox}")

    def recreate_mailbox(self, mailbox: str = "INBOX", *, user: str | None = None) -> None:
        """Delete the mailbox with its messages and create it anew: a new UIDVALIDITY, UIDs from 1.

        IMAP cannot delete INBOX, so for INBOX the user's sessions are kicked (they get
        ``* BYE``) and its directory is removed; Dovecot creates it again on the next access.
        """
        name = user or self.user
        if mailbox.upper() != "INBOX":
            with self.client(name) as imap:
                imap.delete(_quote_mailbox(mailbox))  # NO when it does not exist: fine
                _check(imap.create(_quote_mailbox(mailbox)), f"CREATE {mailbox}")
            return
        assert self._private is not None, "Dovecot is not running"
        self._kick(name)
        home = self._private / "mail" / name
        shutil.rmtree(home / "inbox", ignore_errors=True)
        # The mailbox list index caches INBOX's UIDVALIDITY; it is rebuilt from the directories.
        for cached in (home / "Maildir").glob("dovecot.list.index*"):
            cached.unlink()

    def _search(self, imap: imaplib.IMAP4, mailbox: str) -> list[int]:
        _check(imap.select(_quote_mailbox(mailbox), readonly=True), f"EXAMINE {mailbox}")
        status, data = imap.uid("SEARCH", "ALL")
        _check((status, data), f"UID SEARCH in {mailbox}")
        return sorted(int(uid) for uid in (data[0] or b"").split())

    def _doveadm(self, *args: str) -> str:
        done = subprocess.run(
            [self.doveadm, "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"doveadm {' '.join(args)} failed ({done.returncode}):\n{done.stderr}"
            )
        return done.stdout

    def _sessions(self, user: str) -> set[int]:
        lines = self._doveadm("who", "-1", user).splitlines()[1:]  # user proto pid ip
        return {int(line.split()[2]) for line in lines if line.strip()}

    def _kick(self, user: str) -> None:
        """Disconnect the user's IMAP sessions and wait until their processes have gone."""
        pids = self._sessions(user)
        if not pids:
            return
        self._doveadm("kick", user)
        deadline = time.monotonic() + STOP_TIMEOUT
        while pids and time.monotonic() < deadline:
            pids = {pid for pid in pids if _alive(pid)}
            if pids:
                time.sleep(0.02)
        if pids:
            raise RuntimeError(f"kicked IMAP sessions of {user} still running: {sorted(pids)}")


class _PortTaken(RuntimeError):
    pass


def _first_user(*names: str) -> str:
    for name in names:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    raise RuntimeError(f"none of the users {names} exists for Dovecot's login processes")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_children(pid: int) -> list[str] | None:
    """The process names of pid's children that have not exited, None if /proc cannot tell."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    names = []
    for child in children:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{child}/stat").read_text()
            if stat.rpartition(")")[2].split()[0] != "Z":
                names.append(Path(f"/proc/{child}/comm").read_text().strip())
    return names


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL once only the log process is left (or after STOP_TIMEOUT).

    Dovecot's master keeps its log process for about a second after all its other processes
    have gone; the log process ends by itself as soon as the master does, so that second
    is not waited for.
    """
    if process.poll() is not None:
        return
    process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        if _live_children(process.pid) in ([], ["log"]):
            break
        time.sleep(0.01)
    if process.poll() is None:
        process.kill()
    process.wait()
