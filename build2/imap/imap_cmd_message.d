build2/imap/imap_cmd_message.o: src/imap/imap_cmd_message.c \
 src/core/buf.h src/core/log.h src/imap/imap_session_int.h \
 src/imap/imap_parse.h src/imap/imap_uidmap.h src/net/server.h \
 src/core/worker.h src/store/blob.h src/store/store.h \
 src/net/line_session.h
src/core/buf.h:
src/core/log.h:
src/imap/imap_session_int.h:
src/imap/imap_parse.h:
src/imap/imap_uidmap.h:
src/net/server.h:
src/core/worker.h:
src/store/blob.h:
src/store/store.h:
src/net/line_session.h:
