//! How both adapters cut a listing into pages: fetch one item more than the page holds
//! (`fetch`); if it came, another page exists, and it starts after the last item kept
//! (`cut`). Every paginated listing of the store goes through these two functions.

/// How many items to fetch for a page of `limit`: one more, which tells whether another
/// page exists.
pub(crate) fn fetch(limit: u32) -> usize {
    limit as usize + 1
}

/// The page of `limit` items out of `items` (fetched with [`fetch`], in listing order) and
/// the cursor of the next page: `cursor` of the last item kept, when more items came than
/// the page holds; `None` at the end of the listing. A `limit` of 0 gives an empty page
/// with no cursor (the API's limits start at 1).
pub(crate) fn cut<T, C>(
    mut items: Vec<T>,
    limit: u32,
    cursor: impl FnOnce(&T) -> C,
) -> (Vec<T>, Option<C>) {
    if items.len() <= limit as usize {
        return (items, None);
    }
    items.truncate(limit as usize);
    let next = items.last().map(cursor);
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(fetched: usize, limit: u32) -> (Vec<u32>, Option<u32>) {
        cut((1..=fetched as u32).collect(), limit, |n| *n * 10)
    }

    #[test]
    fn fetches_one_more_than_the_page() {
        assert_eq!(fetch(0), 1);
        assert_eq!(fetch(2), 3);
        assert_eq!(fetch(200), 201);
        assert_eq!(fetch(u32::MAX), u32::MAX as usize + 1);
    }

    #[test]
    fn nothing_fetched_is_the_end() {
        assert_eq!(page(0, 3), (vec![], None));
    }

    #[test]
    fn fewer_than_the_page_is_the_end() {
        assert_eq!(page(2, 3), (vec![1, 2], None));
    }

    #[test]
    fn exactly_the_page_is_the_end() {
        assert_eq!(page(3, 3), (vec![1, 2, 3], None));
    }

    #[test]
    fn one_more_is_cut_and_the_cursor_is_the_last_kept() {
        assert_eq!(page(4, 3), (vec![1, 2, 3], Some(30)));
    }

    #[test]
    fn a_limit_of_one() {
        assert_eq!(page(2, 1), (vec![1], Some(10)));
        assert_eq!(page(1, 1), (vec![1], None));
    }

    #[test]
    fn a_limit_of_zero_is_an_empty_page() {
        assert_eq!(page(1, 0), (vec![], None));
    }
}
