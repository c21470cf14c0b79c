#include "gridnode/collector/records.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gridnode::collector {
namespace {

TEST(ReadRecordKeys, ReadsWhatRecordWriterWrote) {
  protocol::EncodedCatalog catalog;
  catalog.bytes = {0x01, 0xfe, 0x7f, 0x00};
  std::string line;
  RecordWriter().catalog("node-7", catalog, line);
  ASSERT_EQ(line.back(), '\n');
  line.pop_back();

  RecordKeys keys;
  ASSERT_TRUE(read_record_keys(line, keys));
  EXPECT_EQ(keys.type, "catalog");
  EXPECT_EQ(keys.node, "node-7");
  EXPECT_EQ(keys.raw, "Af5/AA==");
}

TEST(ReadRecordKeys, ReadsAnyObjectWithTheKeysAtTopLevel) {
  RecordKeys keys;
  ASSERT_TRUE(read_record_keys(
      R"( { "raw" : "QUJD", "metrics":[{"raw":"nested","node":"no"}], "node":"n\"1", "type":"gap" } )",
      keys));
  EXPECT_EQ(keys.type, "gap");
  EXPECT_EQ(keys.node, "n\"1");  // unescaped
  EXPECT_EQ(keys.raw, "QUJD");
}

TEST(ReadRecordKeys, EscapedNodeInWriterLayoutIsUnescaped) {
  RecordKeys keys;
  ASSERT_TRUE(read_record_keys(R"({"type":"report","node":"a\u0041","seq":1,"raw":"QQ=="})", keys));
  EXPECT_EQ(keys.node, "aA");
}

TEST(ReadRecordKeys, RejectsLinesThatAreNotRecords) {
  RecordKeys keys;
  for (const char *bad : {
           "", "garbage", R"(["type","node","raw"])",
           R"({"type":"report","node":"n"})",                     // no raw
           R"({"type":"report","raw":"QQ=="})",                   // no node
           R"({"type":1,"node":"n","raw":"QQ=="})",               // type not a string
           R"({"type":"report","node":"n","x":{"raw":"QQ=="}})",  // raw only
                                                                  // nested
           R"({"type":"report","node":"n","raw":"QQ=="})"
           "x",                                              // trailing bytes
           R"({"type":"report","node":"n","raw":"QQ==",})",  // not JSON
       }) {
    EXPECT_FALSE(read_record_keys(bad, keys)) << bad;
  }
}

TEST(ReadRecordKeys, ReadsAReportsSequenceNumberEitherWay) {
  RecordKeys keys;
  ASSERT_TRUE(read_record_keys(
      R"({"type":"report","node":"n","seq":18446744073709551615,"raw":"QQ=="})", keys));
  EXPECT_EQ(keys.seq, 18446744073709551615u);
  ASSERT_TRUE(read_record_keys(R"({"node":"n","raw":"QQ==","type":"report","seq":42})", keys));
  EXPECT_EQ(keys.seq, 42u);
  ASSERT_TRUE(read_record_keys(R"({"type":"gap","node":"n","from_seq":3,"raw":"QQ=="})", keys));
  EXPECT_EQ(keys.seq, 0u);
  // Not a sequence number: the record is still read (its raw bytes carry the real one).
  ASSERT_TRUE(read_record_keys(R"({"type":"report","node":"n","seq":-1,"raw":"QQ=="})", keys));
  EXPECT_EQ(keys.seq, 0u);
}

// The state is rebuilt from `raw` alone; what RecordWriter derived from it in
// between is not needed, so a line in its layout is not lexed (nor checked)
// there.
TEST(ReadRecordKeys, WriterLayoutIsReadWithoutLexingTheMiddle) {
  RecordKeys keys;
  ASSERT_TRUE(
      read_record_keys(R"({"type":"report","node":"n","metrics":[1,2,"raw":"QQ=="})", keys));
  EXPECT_EQ(keys.raw, "QQ==");
}

}  // namespace
}  // namespace gridnode::collector
