build2/imap/imap_session.o: src/imap/imap_session.c \
 src/imap/imap_session.h src/net/server.h src/core/worker.h \
 src/auth/auth_exchange.h src/auth/sasl.h src/core/config.h \
 src/core/log.h src/core/version.h src/imap/imap_session_int.h \
 src/imap/imap_parse.h src/imap/imap_uidmap.h src/store/blob.h \
 src/store/store.h src/net/line_session.h src/net/tls.h
src/imap/imap_session.h:
src/net/server.h:
src/core/worker.h:
src/auth/auth_exchange.h:
src/auth/sasl.h:
src/core/config.h:
src/core/log.h:
src/core/version.h:
src/imap/imap_session_int.h:
src/imap/imap_parse.h:
src/imap/imap_uidmap.h:
src/store/blob.h:
src/store/store.h:
src/net/line_session.h:
src/net/tls.h:
