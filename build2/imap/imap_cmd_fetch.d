build2/imap/imap_cmd_fetch.o: src/imap/imap_cmd_fetch.c src/core/log.h \
 src/imap/imap_fetch.h src/imap/imap_parse.h src/store/store.h \
 src/imap/imap_session_int.h src/imap/imap_uidmap.h src/net/server.h \
 src/core/worker.h src/store/blob.h src/imap/imap_vanished.h \
 src/net/line_session.h
src/core/log.h:
src/imap/imap_fetch.h:
src/imap/imap_parse.h:
src/store/store.h:
src/imap/imap_session_int.h:
src/imap/imap_uidmap.h:
src/net/server.h:
src/core/worker.h:
src/store/blob.h:
src/imap/imap_vanished.h:
src/net/line_session.h:
