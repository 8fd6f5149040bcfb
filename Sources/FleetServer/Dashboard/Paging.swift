/// One page of a table shown `perPage` rows at a time (the nodes table, the savings report's
/// rows): the page asked for, or the last one when it is past the end (the list may have shrunk
/// since the link was made); page 1 for an empty list.
struct Paging: Equatable {
    /// The page shown, from 1.
    let page: Int
    let pages: Int
    /// The rows of the page, as indices into the whole list.
    let rows: Range<Int>
    let count: Int

    init(count: Int, asked: Int, perPage: Int) {
        pages = max(1, (count + perPage - 1) / perPage)
        page = min(max(1, asked), pages)
        let first = (page - 1) * perPage
        rows = first..<min(count, first + perPage)
        self.count = count
    }

    var previous: Int? { page > 1 ? page - 1 : nil }
    var next: Int? { page < pages ? page + 1 : nil }
    /// "501–1000 of 10000".
    var span: String { "\(rows.lowerBound + 1)–\(rows.upperBound) of \(count)" }
}
