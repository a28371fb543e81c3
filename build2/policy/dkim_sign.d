build2/policy/dkim_sign.o: src/policy/dkim_sign.c src/policy/dkim_int.h \
 src/policy/dkim_sign.h src/core/base64.h src/core/buf.h src/core/str.h
src/policy/dkim_int.h:
src/policy/dkim_sign.h:
src/core/base64.h:
src/core/buf.h:
src/core/str.h:
