build2/imap/imap_cmd_search.o: src/imap/imap_cmd_search.c src/core/log.h \
 src/imap/imap_search.h src/imap/imap_parse.h src/imap/imap_session_int.h \
 src/imap/imap_uidmap.h src/net/server.h src/core/worker.h \
 src/store/blob.h src/store/store.h
src/core/log.h:
src/imap/imap_search.h:
src/imap/imap_parse.h:
src/imap/imap_session_int.h:
src/imap/imap_uidmap.h:
src/net/server.h:
src/core/worker.h:
src/store/blob.h:
src/store/store.h:
