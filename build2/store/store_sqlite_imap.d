build2/store/store_sqlite_imap.o: src/store/store_sqlite_imap.c \
 src/store/store_sqlite_int.h src/store/store.h src/store/blob.h \
 src/store/blob_seg.h src/store/store_msg.h src/store/store_util.h \
 src/core/str.h
src/store/store_sqlite_int.h:
src/store/store.h:
src/store/blob.h:
src/store/blob_seg.h:
src/store/store_msg.h:
src/store/store_util.h:
src/core/str.h:
