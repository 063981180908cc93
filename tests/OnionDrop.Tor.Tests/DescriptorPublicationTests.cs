using OnionDrop.Tor.Control;

namespace OnionDrop.Tor.Tests;

/// <summary>
/// "Published" waits for every HSDir a tor run uploaded to: after a restart, one accepting HSDir was not
/// enough for a client holding the previous run's descriptor.
/// </summary>
public class DescriptorPublicationTests
{
    private const string Address = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvw";
    private const string A = "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~relay1", B = "$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~relay2", C = "$CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC~relay3";

    private static HsDescEvent Event(string action, string hsDir, string address = Address) =>
        new(action, address, "UNKNOWN", hsDir, action == "UPLOAD" ? "descid" : null, action == "FAILED" ? "UPLOAD_REJECTED" : null);

    [Test]
    public void Published_once_every_upload_is_answered_and_one_was_accepted()
    {
        var publication = new DescriptorPublication(Address + ".onion");
        foreach (var hsDir in new[] { A, B, C }) Assert.That(publication.Observe(Event("UPLOAD", hsDir)), Is.False);

        Assert.That(publication.Observe(Event("UPLOADED", A)), Is.False, "B and C have not answered yet");
        Assert.That(publication.Observe(Event("FAILED", B)), Is.False);
        Assert.That(publication.Unanswered, Is.EqualTo(1));
        Assert.That(publication.Observe(Event("UPLOADED", C)), Is.True, "the last answer publishes");
        Assert.That(publication.Published, Is.True);
    }

    [Test]
    public void Every_upload_failing_is_not_published_until_a_later_round_is_accepted()
    {
        var publication = new DescriptorPublication(Address);
        publication.Observe(Event("UPLOAD", A));
        publication.Observe(Event("UPLOAD", B));
        publication.Observe(Event("FAILED", A));
        Assert.That(publication.Observe(Event("FAILED", B)), Is.False);
        Assert.That(publication.Published, Is.False);

        publication.Observe(Event("UPLOAD", A));
        Assert.That(publication.Observe(Event("UPLOADED", A)), Is.True);
    }

    [Test]
    public void Both_descriptors_uploaded_to_one_HSDir_need_both_answers_whatever_the_nickname_form()
    {
        // A service uploads its current and next time period's descriptors; one HSDir may hold both.
        var publication = new DescriptorPublication(Address);
        publication.Observe(Event("UPLOAD", A));
        publication.Observe(Event("UPLOAD", A.Replace('~', '=')));
        Assert.That(publication.Observe(Event("UPLOADED", A)), Is.False);
        Assert.That(publication.Observe(Event("UPLOADED", A.Replace('~', '='))), Is.True);
    }

    [Test]
    public void Another_services_events_and_other_actions_change_nothing()
    {
        var publication = new DescriptorPublication(Address);
        publication.Observe(Event("UPLOAD", A));
        Assert.That(publication.Observe(Event("UPLOADED", A, address: "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")), Is.False);
        Assert.That(publication.Observe(Event("RECEIVED", A)), Is.False);
        Assert.That(publication.Observe(Event("REQUESTED", A)), Is.False);
        Assert.That(publication.Published, Is.False);
        Assert.That(publication.Observe(Event("UPLOADED", A)), Is.True);
    }

    [Test]
    public void An_acceptance_without_a_seen_upload_publishes_and_later_rounds_do_not_undo_it()
    {
        // Events subscribed after tor had already started uploading: the acceptance still counts.
        var publication = new DescriptorPublication(Address);
        Assert.That(publication.Observe(Event("UPLOADED", B)), Is.True);

        Assert.That(publication.Observe(Event("UPLOAD", A)), Is.False, "a routine re-upload");
        Assert.That(publication.Observe(Event("FAILED", A)), Is.False);
        Assert.That(publication.Published, Is.True);
    }
}
