PKG_CFLAGS := -I/usr/include/x86_64-linux-gnu 
PKG_LIBS := -lyaml -lxxhash -ljansson 
GIT2_SONAME := libgit2.so.1.5
CURL_SONAME := libcurl.so.4
CMOCKA_CFLAGS := 
CMOCKA_LIBS := -lcmocka 
