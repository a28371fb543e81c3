build2/store/blob.o: src/store/blob.c src/store/blob.h src/core/str.h \
 src/store/blob_seg.h
src/store/blob.h:
src/core/str.h:
src/store/blob_seg.h:
