build2/store/blob_seg.o: src/store/blob_seg.c src/store/blob_seg.h \
 src/store/blob.h src/core/str.h
src/store/blob_seg.h:
src/store/blob.h:
src/core/str.h:
