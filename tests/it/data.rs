//! Auxiliary corpora: the on-disk token cache is reused, invalidated by any change, and refuses
//! a corpus with nothing to train on.

use tartan::data::corpus::Corpus;
use tartan::train::pretrained::Pretrained;

use crate::common::tiny::tiny_setup;

#[test]
fn corpus_cache_is_reused_and_invalidated_when_the_file_changes() {
    let setup = tiny_setup(17);
    let p = Pretrained::from_dir(&setup.model).unwrap();
    let file = setup.path("c.txt");
    let cache = setup.path("cache-test");
    std::fs::write(&file, "amber1 amber2\n\n   \nbasil3 f1 f2\n").unwrap();
    let c = Corpus::open("c", &file, &p.tokenizer, 32, &cache).unwrap();
    assert_eq!(c.len(), 2, "blank lines are skipped");
    assert_eq!(c.get(0).unwrap().len(), 4);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    Corpus::open("c", &file, &p.tokenizer, 32, &cache).unwrap();
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2, "an unchanged corpus was tokenized again");
    std::fs::write(&file, "amber1\n").unwrap();
    let c = Corpus::open("c", &file, &p.tokenizer, 32, &cache).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 4);
    // A block of 3 keeps one word between [CLS] and [SEP] (a block of 2 would keep no word, so
    // nothing to mask, and the line would be left out).
    std::fs::write(&file, "amber1 amber2 basil3\n").unwrap();
    let truncated = Corpus::open("c", &file, &p.tokenizer, 3, &cache).unwrap();
    assert_eq!(truncated.get(0).unwrap().len(), 3, "block size truncates");
    // A line of special and unknown tokens only has nothing to mask: it is left out.
    std::fs::write(&file, "amber1 😀\n😀 🎉\n").unwrap();
    let c = Corpus::open("c", &file, &p.tokenizer, 32, &cache).unwrap();
    assert_eq!(c.len(), 1);
    std::fs::write(&file, "\n  \n").unwrap();
    let err = Corpus::open("c", &file, &p.tokenizer, 32, &cache).err().unwrap().to_string();
    assert!(err.contains("no non-empty line"), "{err}");
}
